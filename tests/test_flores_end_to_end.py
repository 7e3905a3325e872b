"""FLORES end to end on tiny models of real classes: results files, signatures, resume, rescoring."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from mt_harness.cli import main


def run_cli(*args: str) -> int:
    return main(list(args))


@pytest.mark.parametrize("arch,chat", [("llama", True), ("qwen2", True), ("gemma3", False)])
def test_run_writes_results_and_samples(tiny_model_factory, data_dir, tmp_path, arch, chat):
    model = tiny_model_factory(arch, chat)
    out = tmp_path / "out"
    rc = run_cli("run", "--method", "base", "--tasks", "flores", "--model", str(model), "--limit", "3",
                 "--langs", "de-en,en-zh", "--output", str(out), "--data-dir", str(data_dir), "--batch-size", "2")
    assert rc == 0
    results = json.loads((out / "results.json").read_text())
    flores = results["tasks"]["flores"]
    assert set(flores["metrics"]) == {"de-en", "en-zh"}
    assert "tok:13a" in flores["metrics"]["de-en"]["signatures"]["bleu"]
    assert "tok:zh" in flores["metrics"]["en-zh"]["signatures"]["bleu"]
    assert "nw:2" in flores["metrics"]["de-en"]["signatures"]["chrf"]  # chrF++
    assert results["model"]["weights_sha256"] and results["versions"]["sacrebleu"]
    assert flores["backend"]["batch_size"] == 2
    samples = [json.loads(x) for x in (out / "flores" / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 6
    first = samples[0]
    assert {"prompts", "prompt_hash", "raw", "outputs", "reference", "scores", "finish"} <= set(first)
    if chat:
        assert "<|im_start|>" in first["prompts"][0]


def test_resume_after_interruption_loses_and_duplicates_nothing(tiny_model, data_dir, tmp_path):
    args = ["run", "--tasks", "flores", "--model", str(tiny_model), "--limit", "4", "--langs", "de-en",
            "--data-dir", str(data_dir), "--batch-size", "2"]
    full = tmp_path / "full"
    assert run_cli(*args, "--output", str(full)) == 0
    # Interrupted run: keep the first sample and a torn half line, as a SIGKILL mid-write leaves it.
    part = tmp_path / "part"
    (part / "flores").mkdir(parents=True)
    lines = (full / "flores" / "samples.jsonl").read_text().splitlines()
    (part / "flores" / "run.json").write_text((full / "flores" / "run.json").read_text())
    (part / "flores" / "samples.jsonl").write_text(lines[0] + "\n" + lines[1][: len(lines[1]) // 2])
    assert run_cli(*args, "--output", str(part)) == 0
    resumed = (part / "flores" / "samples.jsonl").read_text().splitlines()
    assert [json.loads(x)["id"] for x in resumed] == [json.loads(x)["id"] for x in lines]
    assert sorted(resumed) == sorted(lines)  # identical records: greedy decoding is deterministic
    a = json.loads((full / "results.json").read_text())["tasks"]["flores"]["metrics"]
    b = json.loads((part / "results.json").read_text())["tasks"]["flores"]["metrics"]
    assert a == b


def test_rerun_reuses_samples_and_refuses_other_model(tiny_model_factory, data_dir, tmp_path, capsys):
    out = tmp_path / "out"
    args = ["run", "--tasks", "flores", "--limit", "2", "--langs", "de-en", "--data-dir", str(data_dir),
            "--output", str(out)]
    assert run_cli(*args, "--model", str(tiny_model_factory("llama", True))) == 0
    before = (out / "flores" / "samples.jsonl").read_bytes()
    assert run_cli(*args, "--model", str(tiny_model_factory("llama", True))) == 0
    assert (out / "flores" / "samples.jsonl").read_bytes() == before
    assert run_cli(*args, "--model", str(tiny_model_factory("qwen2", True))) == 2
    assert "different run" in capsys.readouterr().err
    assert (out / "flores" / "samples.jsonl").read_bytes() == before


def test_score_recomputes_without_model(tiny_model, data_dir, tmp_path):
    out = tmp_path / "out"
    assert run_cli("run", "--tasks", "flores", "--model", str(tiny_model), "--limit", "2", "--langs", "de-en",
                   "--data-dir", str(data_dir), "--output", str(out)) == 0
    before = json.loads((out / "results.json").read_text())["tasks"]["flores"]["metrics"]
    assert run_cli("score", str(out), "--data-dir", str(data_dir)) == 0
    after = json.loads((out / "results.json").read_text())["tasks"]["flores"]["metrics"]
    assert before == after
    # an output kept by an older extraction is cleaned again from the raw text: a fixed extraction applies
    path = out / "flores" / "samples.jsonl"
    recs = [json.loads(x) for x in path.read_text().splitlines()]
    kept = [r["outputs"] for r in recs]
    recs[0]["outputs"], recs[0]["cleaning"] = ["stale extraction"], [["old_step"]]
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in recs))
    assert run_cli("score", str(out), "--data-dir", str(data_dir)) == 0
    again = [json.loads(x) for x in path.read_text().splitlines()]
    assert [r["outputs"] for r in again] == kept and "old_step" not in again[0]["cleaning"][0]
    assert json.loads((out / "results.json").read_text())["tasks"]["flores"]["metrics"] == before


@pytest.mark.parametrize("args,needle", [
    (["--tasks", "nosuch"], "unknown task 'nosuch'"),
    (["--tasks", "flores", "--langs", "xx-en"], "unknown language code 'xx'"),
    (["--tasks", "flores", "--model", "/no/such/model"], "--model /no/such/model"),
    (["--tasks", "flores", "--method", "nosuch"], "unknown method 'nosuch'"),
    (["--tasks", "flores", "--data-dir", "/no/such/dir"], "--data-dir /no/such/dir"),
])
def test_bad_input_is_one_line_without_traceback(args, needle, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "mt_harness.cli", "run", "--output", str(tmp_path / "o"), *args],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    err = proc.stderr.strip()
    assert needle in err and "Traceback" not in err and len(err.splitlines()) == 1
