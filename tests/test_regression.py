"""CI regression check: a fixed small run compared with a stored baseline (tests/regression/).

The run (tests/regression/config.json) is `harness run` with the tiny *random* qwen2 chat model built
by tests/conftest.py, on 4 FLORES sentences per direction, greedy, float32 on CPU, seed 0. A random
model translates nothing: its outputs are garbage, and its chrF++ is ~1. But it is *deterministic*
garbage, so the metrics of this fixed model/seed/settings are a valid regression target for the whole
pipeline (data loading, prompt rendering with the chat template, batched generation, cleaning, LID,
sacrebleu scoring, aggregation). The prompts are compared exactly (their sha256), metrics within the
tolerances stated in config.json (chrF/BLEU ±0.5 points, rates exactly, mean new tokens ±1); a failure
names the metric, the old and the new value.

An intended change (new prompt template, cleaning, metric) re-blesses the baseline with:

    HARNESS_BLESS=1 python -m pytest tests/test_regression.py

and the diff of tests/regression/baseline.json goes into the same commit.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from harness.cli import main
from harness.io import atomic_write_json, sha256_text

HERE = Path(__file__).resolve().parent / "regression"
CONFIG = json.loads((HERE / "config.json").read_text())
BASELINE = HERE / "baseline.json"


def measure(out: Path) -> dict:
    """Flat {name: value} of everything the baseline pins, from a finished run folder."""
    res = json.loads((out / "results.json").read_text())["tasks"]["flores"]
    samples = [json.loads(x) for x in (out / "flores" / "samples.jsonl").read_text().splitlines()]
    samples.sort(key=lambda r: r["id"])
    got = {"n_samples": res["n_samples"], "truncated_rate": res["truncated"]["rate"],
           "prompts_sha256": sha256_text("\n".join(p for r in samples for p in r["prompts"])),
           "mean_new_tokens": sum(n for r in samples for n in r["n_new_tokens"]) / len(samples)}
    for subset, m in sorted(res["metrics"].items()):
        for key in ("chrf", "bleu", "off_target", "empty"):
            got[f"{subset}/{key}"] = m[key]
    return got


def compare(old: dict, new: dict, tolerance: dict, exact: list[str]) -> list[str]:
    problems = []
    for name in sorted(set(old) | set(new)):
        if name not in new or name not in old:
            problems.append(f"{name}: {'missing now' if name not in new else 'not in baseline'} "
                            f"(old {old.get(name)!r}, new {new.get(name)!r})")
            continue
        a, b = old[name], new[name]
        if name in exact or not isinstance(a, (int, float)):
            if a != b:
                problems.append(f"{name}: old {a!r}, new {b!r} (must be equal)")
            continue
        tol = tolerance.get(name.rsplit("/", 1)[-1], 0.0)  # unlisted metrics must match exactly
        if abs(a - b) > tol + 1e-9:
            problems.append(f"{name}: old {a:.4f}, new {b:.4f} (|Δ| {abs(a - b):.4f} > tolerance {tol})")
    return problems


def test_compare_reports_metric_old_and_new():
    old = {"de-en/chrf": 1.5, "prompts_sha256": "x", "n_samples": 8}
    assert compare(old, dict(old), {"chrf": 0.5}, ["prompts_sha256", "n_samples"]) == []
    bad = compare(old, {**old, "de-en/chrf": 2.5, "prompts_sha256": "y"}, {"chrf": 0.5}, ["prompts_sha256"])
    assert bad == ["de-en/chrf: old 1.5000, new 2.5000 (|Δ| 1.0000 > tolerance 0.5)",
                   "prompts_sha256: old 'x', new 'y' (must be equal)"]


def test_small_run_matches_baseline(tiny_model_factory, data_dir, tmp_path):
    model = tiny_model_factory(CONFIG["model"]["arch"], CONFIG["model"]["chat"])
    out = tmp_path / "run"
    assert main(["run", *CONFIG["args"], "--model", str(model), "--output", str(out), "--data-dir", str(data_dir)]) == 0
    new = measure(out)
    if os.environ.get("HARNESS_BLESS") == "1":
        atomic_write_json(BASELINE, {"about": "written by HARNESS_BLESS=1 python -m pytest tests/test_regression.py; "
                                              "settings and tolerances in config.json", "metrics": new})
    assert BASELINE.exists(), "no baseline: run HARNESS_BLESS=1 python -m pytest tests/test_regression.py"
    old = json.loads(BASELINE.read_text())["metrics"]
    problems = compare(old, new, CONFIG["tolerance"], CONFIG["exact"])
    assert not problems, "regression against tests/regression/baseline.json:\n" + "\n".join(problems) + \
        "\n(intended? re-bless: HARNESS_BLESS=1 python -m pytest tests/test_regression.py)"
