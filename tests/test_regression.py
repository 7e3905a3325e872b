"""CI regression check: a fixed small run of a real model compared with a stored baseline (tests/regression/).

The run (tests/regression/config.json) is `harness run` with the embedded SmolLM2-135M-Instruct
(`resolve_model`, converted once into the cache) on the first 8 FLORES devtest lines of de-en and en-de,
greedy, float32 on CPU, 1 thread, seed 0 (outputs are identical run to run here), with the real
tasks/flores.yaml except for max_new_tokens (96 instead of 256, to keep the run short). Its metrics are
informative: BLEU > 0, chrF++ well above noise, off-target between 0 and 1, some samples truncated and
some not, some outputs changed by the cleaning step. So a bug in data loading, prompt rendering, batched
generation, cleaning, language ID or sacrebleu scoring moves a pinned number (or breaks one of those
properties, asserted on their own). The prompts are compared exactly (their sha256), as are the metric
signatures (without sacrebleu's version) and the cleaning steps per sample; metrics within the tolerances in
config.json (chrF/BLEU ±0.5 points, rates exactly, mean new tokens ±1). A failure names the metric, the
old and the new value.

An intended change (new prompt template, cleaning, metric) re-blesses the baseline with:

    HARNESS_BLESS=1 python -m pytest tests/test_regression.py

and the diff of tests/regression/baseline.json goes into the same commit.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import yaml

from mt_harness.cli import main
from harness.io import atomic_write_json, sha256_text
from tasks import TASKS_DIR

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
           "mean_new_tokens": sum(n for r in samples for n in r["n_new_tokens"]) / len(samples),
           "cleaning": {r["id"]: r["cleaning"][0] for r in samples if r["cleaning"][0]}}
    for subset, m in sorted(res["metrics"].items()):
        for key in ("chrf", "bleu", "off_target", "empty"):
            got[f"{subset}/{key}"] = m[key]
        for key in ("bleu", "chrf"):
            got[f"{subset}/{key}_signature"] = "|".join(p for p in m["signatures"][key].split("|")
                                                        if not p.startswith("version:"))
    return got


def informative_problems(out: Path) -> list[str]:
    """The properties that make the pinned numbers able to move (a degenerate run would pin nothing)."""
    res = json.loads((out / "results.json").read_text())["tasks"]["flores"]
    samples = [json.loads(x) for x in (out / "flores" / "samples.jsonl").read_text().splitlines()]
    problems = []
    for subset, m in sorted(res["metrics"].items()):
        if not (m["bleu"] > 0.5 and m["chrf"] > 5):
            problems.append(f"{subset}: BLEU {m['bleu']:.2f} / chrF++ {m['chrf']:.2f} (expected > 0.5 / > 5)")
        if not 0 < m["off_target"] < 1:
            problems.append(f"{subset}: off-target rate {m['off_target']} (expected strictly between 0 and 1)")
    if not 0 < res["truncated"]["rate"] < 1:
        problems.append(f"truncated rate {res['truncated']['rate']} (expected strictly between 0 and 1)")
    cleaned = [r for r in samples if r["cleaning"][0]]
    if not cleaned or any(r["outputs"][0] == r["raw"][0].strip() for r in cleaned):
        problems.append(f"cleaning changed {len(cleaned)} outputs (expected some, each different from its raw output)")
    return problems


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


def regression_task(tmp_path: Path) -> Path:
    """tasks/flores.yaml with config.json's overrides (only max_new_tokens): prompts stay the real ones."""
    cfg = yaml.safe_load((TASKS_DIR / "flores.yaml").read_text(encoding="utf-8"))
    for section, values in CONFIG["task_overrides"].items():
        cfg[section].update(values)
    path = tmp_path / "flores.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


def test_small_run_matches_baseline(data_dir, tmp_path):
    out = tmp_path / "run"
    argv = ["run", *CONFIG["args"], "--tasks", str(regression_task(tmp_path)), "--model", CONFIG["model"],
            "--output", str(out), "--data-dir", str(data_dir)]
    assert main(argv) == 0
    informative = informative_problems(out)
    new = measure(out)
    if os.environ.get("HARNESS_BLESS") == "1":
        assert not informative, "not blessing an uninformative run:\n" + "\n".join(informative)
        atomic_write_json(BASELINE, {"about": "written by HARNESS_BLESS=1 python -m pytest tests/test_regression.py; "
                                              "settings and tolerances in config.json", "metrics": new})
    assert BASELINE.exists(), "no baseline: run HARNESS_BLESS=1 python -m pytest tests/test_regression.py"
    old = json.loads(BASELINE.read_text())["metrics"]
    problems = informative + compare(old, new, CONFIG["tolerance"], CONFIG["exact"])
    assert not problems, "regression against tests/regression/baseline.json:\n" + "\n".join(problems) + \
        "\n(intended? re-bless: HARNESS_BLESS=1 python -m pytest tests/test_regression.py)"
