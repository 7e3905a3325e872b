"""A corpus of bad inputs: each gives one clear `error:` line naming the problem, exit code 2, no traceback,
and nothing already computed is lost or overwritten.

Task YAMLs live in tests/bad_inputs/tasks/ (passed by path to --tasks), bad data files in
tests/bad_inputs/data/ (placed into a temporary --data-dir beside real FLORES files). Most cases
call `mt_harness.cli.main` in-process (fast; a stray exception fails the test instead of printing a
traceback); a few run `python -m mt_harness.cli` as a subprocess to check the process-level contract.
Not covered here: NaN training loss and artifact config-hash mismatch (the trainer's tests own those).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mt_harness.cli import main

REPO = Path(__file__).resolve().parent.parent
CORPUS = Path(__file__).resolve().parent / "bad_inputs"
TASKS = CORPUS / "tasks"
FLORES = ("flores", "flores200_dataset", "devtest")

# (task YAML in the corpus, --langs or None, text the error line must contain)
TASK_CASES = [
    ("malformed.yaml", "de-en", "invalid YAML"),
    ("unknown_key.yaml", "de-en", "unknown key 'taks'"),
    ("unknown_nested_key.yaml", "de-en", "generation: unknown key 'max_tokens'"),
    ("duplicate_key.yaml", "de-en", "duplicate key 'generation'"),
    ("wrong_type.yaml", "de-en", "max_new_tokens: expected int"),
    ("zero_max_tokens.yaml", "de-en", "max_new_tokens: must be >= 1"),
    ("negative_temperature.yaml", "de-en", "temperature: must be >= 0"),
    ("bad_chat_mode.yaml", "de-en", "'maybe' is not one of"),
    ("python_tag.yaml", "de-en", "python/object"),
    ("not_mapping.yaml", "de-en", "expected a mapping at the top level"),
    ("empty.yaml", "de-en", "expected a mapping at the top level"),
    ("missing_prompt.yaml", "de-en", "prompt: required key is missing"),
    ("unknown_hook.yaml", "de-en", "no module tasks/nosuch_hook.py"),
    ("hook_path.yaml", "de-en", "must be a module name under tasks/"),
    ("bad_option_value.yaml", "de-en", "'everything' is not one of"),
    ("unknown_option.yaml", "de-en", "unknown key 'colour'"),
    ("empty_languages.yaml", "de-en", "must list at least one language"),
    ("duplicate_language.yaml", "de-en", "'de' is listed twice"),
    ("unknown_language_code.yaml", None, "klingon"),
    ("template_unknown_field.yaml", "de-en", "{sentence}"),
    ("non_utf8.yaml", "de-en", "not valid UTF-8"),
    ("missing_split_files.yaml", "de-en", "deu_Latn.nosuchsplit not found"),
]

# (extra/overriding CLI arguments, text the error line must contain)
CLI_CASES = [
    (["--tasks", "nosuch"], "unknown task 'nosuch'"),
    (["--tasks", "/nonexistent/task.yaml"], "file not found"),
    (["--method", "nosuch"], "unknown method 'nosuch'"),
    (["--model", "nosuch-model"], "--model nosuch-model"),
    (["--langs", "xx-en"], "'xx'"),
    (["--langs", "deen"], "'deen' is not a pair like de-en"),
    (["--langs", "de-de"], "'de-de' is not a pair like de-en"),
    (["--limit", "0"], "--limit: must be >= 1"),
    (["--data-dir", "/nonexistent/data"], "not a directory"),
    (["--dtype", "float8"], "--dtype float8"),
    (["--chunk-size", "0"], "--chunk-size: must be >= 1"),
]

# (file placed as deu_Latn.devtest in a temporary data dir, or None to leave it out; expected text)
DATA_CASES = [
    (None, "deu_Latn.devtest not found"),
    ("empty.devtest", "file is empty"),
    ("short.devtest", "de has 2 lines but en has"),
    ("blank_line_only.devtest", "de has 1 lines but en has"),
    ("non_utf8.devtest", "not valid UTF-8"),
]


def error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [x for x in err.replace("\r", "\n").splitlines() if x.strip()]
    errors = [x for x in lines if x.startswith("error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], err[-1000:]
    return errors[0]


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def base_args(tiny_model, data_dir, tmp_path):
    return ["run", "--tasks", "flores", "--langs", "de-en", "--limit", "2", "--model", str(tiny_model),
            "--data-dir", str(data_dir), "--output", str(tmp_path / "out"), "--threads", "1", "--batch-size", "2"]


def override(args: list[str], extra: list[str]) -> list[str]:
    args = list(args)
    for i in range(0, len(extra), 2):
        if extra[i] in args:
            args[args.index(extra[i]) + 1] = extra[i + 1]
        else:
            args += extra[i : i + 2]
    return args


def test_corpus_is_big_enough():
    assert len(TASK_CASES) + len(CLI_CASES) + len(DATA_CASES) + len(FOLDER_CASES) >= 30
    assert {p.name for p in TASKS.glob("*.yaml")} - {"_good.yaml"} == {c[0] for c in TASK_CASES}


def test_good_yaml_of_the_corpus_runs(base_args, capsys, tmp_path):
    assert main(override(base_args, ["--tasks", str(TASKS / "_good.yaml"), "--limit", "1"])) == 0
    assert (tmp_path / "out" / "results.json").exists()


@pytest.mark.parametrize("name,langs,expected", TASK_CASES, ids=[c[0] for c in TASK_CASES])
def test_bad_task_yaml(base_args, capsys, tmp_path, name, langs, expected):
    args = override(base_args, ["--tasks", str(TASKS / name)])
    if langs is None:
        i = args.index("--langs")
        del args[i : i + 2]
    assert main(args) == 2
    line = error_line(capsys)
    assert expected in line
    assert not (tmp_path / "out" / "results.json").exists()


@pytest.mark.parametrize("extra,expected", CLI_CASES, ids=[" ".join(c[0]) for c in CLI_CASES])
def test_bad_cli_arguments(base_args, capsys, tmp_path, extra, expected):
    assert main(override(base_args, extra)) == 2
    assert expected in error_line(capsys)
    assert not (tmp_path / "out").exists()  # refused before anything is written


@pytest.mark.parametrize("bad,expected", DATA_CASES, ids=[str(c[0]) for c in DATA_CASES])
def test_bad_data_files(base_args, capsys, data_dir, tmp_path, bad, expected):
    root = tmp_path / "data"
    folder = root.joinpath(*FLORES)
    folder.mkdir(parents=True)
    (folder / "eng_Latn.devtest").symlink_to(data_dir.joinpath(*FLORES, "eng_Latn.devtest"))
    if bad:
        shutil.copy(CORPUS / "data" / bad, folder / "deu_Latn.devtest")
    assert main(override(base_args, ["--data-dir", str(root)])) == 2
    line = error_line(capsys)
    assert expected in line
    assert "deu_Latn" in line or " de " in line  # names the file or language at fault


# ---- damaged or foreign results folders: refused, and nothing in them is changed ----------------------

def corrupt_middle_line(out: Path) -> None:
    p = out / "flores" / "samples.jsonl"
    lines = p.read_text().splitlines(keepends=True)
    p.write_text(lines[0][: len(lines[0]) // 2] + "\n" + "".join(lines[1:]))


def duplicate_line(out: Path) -> None:
    p = out / "flores" / "samples.jsonl"
    lines = p.read_text().splitlines(keepends=True)
    p.write_text("".join(lines + lines[:1]))


def drop_a_sample(out: Path) -> None:
    p = out / "flores" / "samples.jsonl"
    p.write_text("".join(p.read_text().splitlines(keepends=True)[1:]))


def truncate_results(out: Path) -> None:
    p = out / "results.json"
    p.write_text(p.read_text()[:100])


def remove_results(out: Path) -> None:
    (out / "results.json").unlink()


# (damage, command: "run" reruns the same command, "seed" reruns with another seed, "score"; expected)
FOLDER_CASES = [
    (corrupt_middle_line, "run", "line 1 is not valid JSON"),
    (duplicate_line, "run", "repeats id"),
    (lambda out: None, "seed", "different run (seed differ)"),
    (corrupt_middle_line, "score", "line 1 is not valid JSON"),
    (drop_a_sample, "score", "1 samples missing"),
    (truncate_results, "score", "results.json: not valid JSON"),
    (remove_results, "score", "results.json: file not found"),
]


@pytest.fixture(scope="module")
def finished_run(tiny_model_factory, tmp_path_factory):
    from tests.conftest import DATA_DIR

    if not (DATA_DIR / "flores").is_dir():
        pytest.skip("no shared data")
    out = tmp_path_factory.mktemp("finished") / "out"
    args = ["run", "--tasks", "flores", "--langs", "de-en", "--limit", "3", "--model", str(tiny_model_factory()),
            "--data-dir", str(DATA_DIR), "--output", str(out), "--threads", "1"]
    assert main(args) == 0
    return out, args


@pytest.mark.parametrize("damage,command,expected", FOLDER_CASES,
                         ids=[f"{c[1]}-{getattr(c[0], '__name__', 'none')}" for c in FOLDER_CASES])
def test_damaged_results_folder(finished_run, capsys, tmp_path, damage, command, expected):
    src, args = finished_run
    out = tmp_path / "out"
    shutil.copytree(src, out)
    damage(out)
    before = snapshot(out)
    args = override(args, ["--output", str(out)])
    if command == "seed":
        args = override(args, ["--seed", "99"])
    elif command == "score":
        args = ["score", str(out), "--data-dir", args[args.index("--data-dir") + 1]]
    assert main(args) == 2
    assert expected in error_line(capsys)
    assert snapshot(out) == before  # nothing computed was lost or overwritten


@pytest.mark.parametrize("argv,expected", [
    (["--tasks", "nosuch"], "unknown task 'nosuch'"),
    (["--tasks", str(TASKS / "python_tag.yaml")], "python/object"),
])
def test_process_level_contract(base_args, argv, expected):
    proc = subprocess.run([sys.executable, "-m", "mt_harness.cli", *override(base_args, argv)], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and expected in lines[0], proc.stderr[-800:]


def test_unreachable_judge(tiny_model, data_dir, tmp_path, capsys):
    """An HTTP judge nobody answers: one error naming the endpoint; the generated answers are kept.

    (The judge's progress bar is still open when the error is printed, so the line may start with the
    bar's text: that is the judge phase's to fix; here the error text itself must be a single line.)
    """
    out = tmp_path / "out"
    rc = main(["run", "--tasks", "mtbench", "--limit", "1", "--model", str(tiny_model), "--data-dir", str(data_dir),
               "--output", str(out), "--threads", "1", "--judge", "openai", "--judge-url", "http://127.0.0.1:9/v1",
               "--judge-model", "m"])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err
    hits = [x for x in err.replace("\r", "\n").splitlines() if "error:" in x]
    assert len(hits) == 1 and "error: judge endpoint http://127.0.0.1:9/v1/chat/completions: URLError" in hits[0]
    assert len((out / "mtbench" / "samples.jsonl").read_text().splitlines()) == 1  # answers kept for a retry


OUTPUT_FILE_CASES = [  # (command line with FILE for an existing file, text the error line must contain)
    (["--output", "FILE"], "--output FILE is a file, not a folder"),
    (["--output", "FILE/sub"], "--output FILE/sub cannot be created: FILE is a file"),
    (["leaderboard", "RESULTS", "--output", "FILE"], "--output FILE is a file, not a folder"),
    (["score", "FILE"], "harness score: FILE is a file"),
    (["judge", "FILE", "--judge", "hf", "--judge-model", "x"], "harness judge: FILE is a file"),
    (["train", "--method", "sft"], "artifact folder ($HARNESS_CACHE/artifacts) FILE/artifacts cannot be created"),
]


@pytest.mark.parametrize("argv,expected", OUTPUT_FILE_CASES, ids=[" ".join(c[0][:2]) for c in OUTPUT_FILE_CASES])
def test_output_folder_that_is_a_file(base_args, capsys, tmp_path, monkeypatch, argv, expected):
    """An output folder that is an existing file (or below one): one line, exit 2, nothing written or touched
    (it ended in NotADirectoryError / FileExistsError tracebacks, after loading the model for `run`)."""
    file = tmp_path / "notes.txt"
    file.write_text("keep me\n")
    argv = [a.replace("FILE", str(file)).replace("RESULTS", str(REPO / "results")) for a in argv]
    if argv[0] == "train":
        monkeypatch.setenv("HARNESS_CACHE", str(file))
        argv = (argv + ["--tasks", "flores", "--langs", "de-en"]
                + base_args[base_args.index("--model"):base_args.index("--output")])
    elif argv[0] not in ("leaderboard", "score", "judge"):
        argv = override(base_args, argv)
    before = snapshot(tmp_path)
    assert main(argv) == 2
    assert expected.replace("FILE", str(file)) in error_line(capsys)
    assert snapshot(tmp_path) == before
