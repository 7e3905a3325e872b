"""`harness compare BASELINE CANDIDATE` (leaderboard/compare.py): verdicts, exit codes, refusals, exact pins, reports.

The run folders are real ones written by the runner (harness.runner.evaluate → samples.jsonl + results.json) with
the echo test double as backend, whose outputs are known transformations of each document: the baseline drops every
fourth word of the reference; candidates are made worse on purpose (truncated, the wrong language), slightly worse,
or differ in one sample. The last tests run the command on the committed science runs (results/science/) and check
every Δ and interval against the committed leaderboard.
"""

from __future__ import annotations

import json
import re
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from echo_backend import EchoBackend

from mt_harness.api import compare
from mt_harness.cli import main
from harness.data import DataSource
from harness.errors import HarnessError
from harness.rundir.context import EvalContext
from harness.runner import evaluate
from tasks import load_task
from leaderboard.compare import CompareConfig, parse_tolerance, verdict

MODEL = {"name": "tiny-test", "weights_sha256": "b" * 64}
REPO = Path(__file__).resolve().parent.parent
SCIENCE = REPO / "results" / "science"


def echo_run(data_dir, out: Path, transform, limit: int = 12, template: str | None = None,
             max_new_tokens: int | None = None) -> Path:
    task = load_task("flores", DataSource.resolve(str(data_dir)))
    task.select(["de-en", "en-de"])
    if template is not None:
        task.cfg.prompt.template = template
    if max_new_tokens is not None:
        task.cfg.generation.max_new_tokens = max_new_tokens
    docs = {d["id"]: d for s in task.selected for d in task.docs(s)[:limit]}
    ctx = EvalContext(out_dir=out, method={"name": "base", "config": {}, "artifact": {"kind": "none"}}, model=MODEL,
                      limit=limit)
    evaluate(task, EchoBackend(docs, transform), ctx)
    return out


def drop4(doc, i):
    return " ".join(w for j, w in enumerate(doc["reference"].split()) if j % 4 != 3)


@pytest.fixture(scope="module")
def runs(data_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("compare")
    made = {
        "base": echo_run(data_dir, root / "base", drop4),
        "same": echo_run(data_dir, root / "same", drop4),
        "truncated": echo_run(data_dir, root / "truncated", lambda doc, i: " ".join(drop4(doc, i).split()[:3])),
        "flipped": echo_run(data_dir, root / "flipped", lambda doc, i: doc["source"]),  # the source's language
        "slightly": echo_run(data_dir, root / "slightly", lambda doc, i: drop4(doc, i).rstrip(".")),
        "one": echo_run(data_dir, root / "one",
                        lambda doc, i: drop4(doc, i) + (" extra" if doc["id"] == "de-en/5" else "")),
        "fewer": echo_run(data_dir, root / "fewer", drop4, limit=10),
        "prompt": echo_run(data_dir, root / "prompt", drop4, template="Translate into {tgt_name}: {source}\n"),
        "config": echo_run(data_dir, root / "config", drop4, max_new_tokens=64),
    }
    sig = shutil.copytree(made["same"], root / "signature")  # as if scored with another BLEU tokenizer
    res = json.loads((sig / "results.json").read_text())
    m = res["tasks"]["flores"]["metrics"]["en-de"]
    m["signatures"]["bleu"] = m["signatures"]["bleu"].replace("tok:13a", "tok:intl")
    (sig / "results.json").write_text(json.dumps(res))
    made["signature"] = sig
    return made


def cli(capsys, *argv) -> tuple[int, str, str]:
    code = main(["compare", *map(str, argv)])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_identical_runs_pass_and_every_verdict_is_unchanged(runs, capsys):
    code, out, _ = cli(capsys, runs["base"], runs["same"], "--exact", "prompts,signatures,outputs")
    assert code == 0
    r = compare(runs["base"], runs["same"])
    assert {m.verdict for m in r.metrics} == {"unchanged"} and all(m.delta == 0 for m in r.metrics)
    assert [m.name for m in r.metrics if m.gated] == ["translation gain"]
    assert "OK: no gated metric regressed, exact pins hold" in out and "--exact outputs: 0 of 24 differ" in out


@pytest.mark.parametrize("worse", ["truncated", "flipped"])
def test_a_candidate_made_worse_fails_naming_metric_delta_and_interval(runs, capsys, worse):
    code, out, _ = cli(capsys, runs["base"], runs[worse])
    assert code == 1
    r = compare(runs["base"], runs[worse])
    gain = r.metrics[0]
    assert gain.name == "translation gain" and gain.verdict == "regressed" and gain.hi < 0
    chrf = next(m for m in r.metrics if m.name == "chrF++")
    assert chrf.verdict == "regressed" and chrf.delta < -10
    last = out.strip().splitlines()[-1]
    assert re.fullmatch(rf"REGRESSED: translation gain {gain.delta:+.2f} \[{gain.lo:+.2f}, {gain.hi:+.2f}\] "
                        r"worse than tolerance 0", last), last
    assert "where did it get worse: chrF++ (flores; per sample: sentence-level chrf)" in out
    if worse == "flipped":  # the source language comes back: off-target rate up, a lower-is-better regression
        off = next(m for m in r.metrics if m.name == "off-target")
        assert off.delta > 0.3 and off.verdict == "regressed"


def test_a_small_worsening_within_tolerance_passes(runs, capsys):
    r = compare(runs["base"], runs["slightly"], CompareConfig(gate=["chrf"]))
    chrf = next(m for m in r.metrics if m.name == "chrF++")
    assert chrf.gated and chrf.verdict == "regressed" and -1.0 < chrf.lo <= chrf.hi < 0  # significant but small
    code, out, _ = cli(capsys, runs["base"], runs["slightly"], "--gate", "chrf")
    assert code == 1
    code, out, _ = cli(capsys, runs["base"], runs["slightly"], "--gate", "chrf", "--tolerance", "chrf=1,translation=1")
    assert code == 0 and "OK: no gated metric regressed" in out
    r = compare(runs["base"], runs["slightly"], CompareConfig(gate=["chrf"], tolerance={"chrf": 1.0}))
    assert {m.name: m.tolerance for m in r.metrics if m.gated} == {"chrF++": 1.0, "chrF++ x-en": 1.0,
                                                                    "chrF++ en-x": 1.0}


@pytest.mark.parametrize("other, what", [("fewer", "documents"), ("signature", "metric signatures"),
                                         ("prompt", "prompts"), ("config", "task config")])
def test_runs_that_are_not_comparable_exit_2_with_one_line(runs, capsys, other, what):
    code, out, err = cli(capsys, runs["base"], runs[other])
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and err.startswith(f"error: not comparable ({what}): flores"), err
    with pytest.raises(HarnessError, match=re.escape(f"({what})")):
        compare(runs["base"], runs[other])


def test_bad_input_exits_2(runs, capsys, tmp_path):
    for argv, message in (([tmp_path], "no results.json"), ([runs["same"], "--gate", "bogus"], "--gate bogus"),
                          ([runs["same"], "--tolerance", "chrf"], "NAME=VALUE"),
                          ([runs["same"], "--exact", "everything"], "--exact everything"),
                          ([runs["same"], "--alpha", "1.5"], "--alpha")):
        code, _, err = cli(capsys, runs["base"], *argv)
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert parse_tolerance("chrf=0.5, ifeval=0.01") == {"chrf": 0.5, "ifeval": 0.01}
    assert verdict(-1.0, -2.0, -0.5, True, 0.4) == "regressed" and verdict(-1.0, -2.0, -0.5, True, 0.6) == "unchanged"
    assert verdict(0.2, 0.1, 0.3, False, 0.0) == "regressed" and verdict(-0.2, -0.3, -0.1, False, 0.0) == "improved"


def test_junit_json_and_step_summary_carry_the_same_verdicts(runs, capsys, tmp_path, monkeypatch):
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    code, _, _ = cli(capsys, runs["base"], runs["flipped"], "--gate", "translation,off-target,BLEU",
                     "--json", tmp_path / "r.json", "--junit", tmp_path / "r.xml", "--exact", "outputs")
    assert code == 1
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["exit_code"] == 1 and data["result"] == "regressed"
    gated = {m["name"]: m["verdict"] for m in data["metrics"] if m["gated"]}
    assert gated == {"translation gain": "regressed", "BLEU": "regressed", "BLEU x-en": "regressed",
                     "BLEU en-x": "regressed", "off-target": "regressed"}
    suite = ET.parse(tmp_path / "r.xml").getroot().find("testsuite")
    cases = {c.get("name"): c for c in suite.findall("testcase")}
    assert set(cases) == set(gated) | {"exact outputs"}
    for name, v in gated.items():
        assert (cases[name].find("failure") is not None) == (v == "regressed")
        assert cases[name].find("failure").get("message").startswith(f"{v}: Δ ")
    assert cases["exact outputs"].find("failure") is not None
    assert int(suite.get("failures")) == 6 and int(suite.get("tests")) == 6
    md = summary.read_text()
    assert md.startswith("## ❌ harness compare") and "| BLEU (flores) | gate |" in md
    assert "### Where did it get worse" in md
    code, out, _ = cli(capsys, runs["base"], runs["same"], "--json")  # no FILE: JSON on stdout
    assert code == 0 and json.loads(out)["result"] == "ok"


def test_exact_outputs_catches_a_one_sample_difference(runs, capsys):
    code, out, _ = cli(capsys, runs["base"], runs["one"])
    assert code == 0  # one sample in 24 moves nothing significantly
    code, out, _ = cli(capsys, runs["base"], runs["one"], "--exact", "prompts,outputs")
    assert code == 1
    assert "--exact prompts: 0 of 24 differ" in out and "--exact outputs: 1 of 24 differ (FAILED)" in out
    assert "flores de-en/5 (raw):" in out and re.search(r"^\s+\+.* extra$", out, re.MULTILINE)
    assert out.strip().splitlines()[-1] == "REGRESSED: --exact outputs: 1 of 24 differ"


def test_packed_runs_compare_as_they_are(runs, tmp_path, capsys):
    packed = shutil.copytree(runs["truncated"], tmp_path / "packed")
    assert main(["pack", str(packed)]) == 0 and not (packed / "flores" / "samples.jsonl").exists()
    plain = compare(runs["base"], runs["truncated"])
    got = compare(runs["base"], packed)
    assert [(m.name, m.delta, m.lo, m.hi, m.verdict) for m in got.metrics] == \
        [(m.name, m.delta, m.lo, m.hi, m.verdict) for m in plain.metrics]
    assert compare(runs["truncated"], packed, CompareConfig(exact=["outputs", "prompts"])).exit_code == 0


def leaderboard_row(label: str) -> dict[str, str]:
    """The committed science leaderboard's Δ-versus-base cells of one row: column label -> text."""
    lines = (SCIENCE / "leaderboard.md").read_text(encoding="utf-8").splitlines()
    start = lines.index("### Δ versus base")
    head = [h.strip().removesuffix(" ↑").removesuffix(" ↓") for h in lines[start + 2].strip("|").split("|")]
    row = next(x for x in lines[start + 4:] if x.startswith(f"| {label} |"))
    return dict(zip(head, (c.strip() for c in row.strip("|").split("|"))))


def test_science_base_versus_sft_seed0_matches_the_leaderboard():
    """Every shared metric's Δ and interval equal the committed leaderboard's (1000 resamples, seed 12345, as
    results/science/leaderboard.md says), and the verdicts follow them (tolerance 0: † = unchanged)."""
    from leaderboard.compare_report import delta_str

    runs = SCIENCE / "smollm2-135m-instruct"
    assert "Bootstrap: 1000 resamples, seed 12345." in (SCIENCE / "leaderboard.md").read_text(encoding="utf-8")
    board = leaderboard_row("sft seed 0")
    r = compare(runs / "base", runs / "sft-s0")
    assert len(r.metrics) >= 18 and {m.name for m in r.metrics} == set(board) - {"method", "model"}
    for m in r.metrics:
        assert delta_str(m) == board[m.name], m.name
        up = m.delta if m.higher_is_better else -m.delta
        if m.column is not None and not m.column.has_direction:  # the signed drift: no better or worse side
            want = "unchanged" if board[m.name].endswith("†") else "changed"
        else:
            want = "unchanged" if board[m.name].endswith("†") else ("improved" if up > 0 else "regressed")
        assert m.verdict == want, m.name
    assert r.exit_code == 1 and [m.name for m in r.regressed] == ["general-ability loss"]


def test_a_results_json_that_disagrees_with_its_samples_gets_a_note(runs, tmp_path):
    edited = shutil.copytree(runs["same"], tmp_path / "edited")
    res = json.loads((edited / "results.json").read_text())
    res["tasks"]["flores"]["summary"]["chrf"] += 1.0
    (edited / "results.json").write_text(json.dumps(res))
    r = compare(runs["base"], edited)
    assert r.exit_code == 0 and any(n.startswith("candidate: flores chrF++: recomputed ") for n in r.notes)


def test_ci_recipe_workflow_script_and_baseline_agree():
    """The workflow runs gate.sh and shows the JUnit file gate.sh writes; the committed baseline is a packed run of
    the recipe's tasks with both composites, and compares with itself exactly."""
    import yaml

    from leaderboard.compare import EXACT

    ci = REPO / "examples" / "ci"
    steps = yaml.safe_load((ci / "regression-gate.yml").read_text())["jobs"]["gate"]["steps"]
    gate = (ci / "gate.sh").read_text()
    assert any(s.get("run") == "bash examples/ci/gate.sh" for s in steps)
    junit = next(s for s in steps if "junit" in s.get("uses", ""))["with"]["report_paths"]
    assert f"--junit {junit}" in gate and 'harness compare "$BASELINE" "$OUT"' in gate
    assert list((ci / "baseline").rglob("samples.jsonl.gz")) and not list((ci / "baseline").rglob("samples.jsonl"))
    r = compare(ci / "baseline", ci / "baseline", CompareConfig(exact=list(EXACT)))
    assert r.exit_code == 0 and r.tasks == ["flores", "ifeval"]
    assert [m.name for m in r.metrics if m.gated] == ["translation gain", "general-ability loss"]
