"""CI regression check: a fixed small run of a real model compared with a committed baseline run folder
(tests/regression/baseline/, packed) by `harness compare`, the command users run in their own CI (README,
"Regression gate in your CI").

The run (tests/regression/config.json) is `harness run` with the embedded SmolLM2-135M-Instruct
(`resolve_model`, converted once into the cache) on the first 8 FLORES devtest lines of de-en and en-de,
greedy, float32 on CPU, 1 thread, seed 0 (outputs are identical run to run here), with the real
tasks/flores.yaml except for max_new_tokens (96 instead of 256, to keep the run short). Its metrics are
informative: BLEU > 0, chrF++ well above noise, off-target between 0 and 1, some samples truncated and
some not, some outputs changed by the cleaning step. So a bug in data loading, prompt rendering, batched
generation, cleaning, language ID or sacrebleu scoring changes what `harness compare` checks (or breaks one
of those properties, asserted on their own):
- not comparable (exit 2): other documents (ids, references, the number of samples), another task config or
  prompt template, other metric signatures (sacrebleu's version aside);
- `--exact prompts,outputs` (config.json `compare_args`): every rendered prompt, raw and cleaned output,
  cleaning step, new-token count, finish reason and per-sample score (chrF, off-target) must be identical;
- the gate (the translation-gain composite) must not regress, and results.json's metrics must equal those
  recomputed from the samples (no "recomputed ... but results.json says" note).
A failure prints `harness compare`'s report: the metric, Δ and interval, or the first differing samples with a diff.

An intended change (new prompt template, cleaning, metric) re-blesses the baseline with:

    HARNESS_BLESS=1 python -m pytest tests/test_regression.py

which replaces tests/regression/baseline/ with the new run (packed); its diff goes into the same commit.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import yaml

from harness.rundir.pack import pack
from mt_harness.cli import main
from tasks import TASKS_DIR

HERE = Path(__file__).resolve().parent / "regression"
CONFIG = json.loads((HERE / "config.json").read_text())
BASELINE = HERE / "baseline"


def informative_problems(out: Path) -> list[str]:
    """The properties that make the pinned run able to move (a degenerate run would pin nothing)."""
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


def regression_task(tmp_path: Path) -> Path:
    """tasks/flores.yaml with config.json's overrides (only max_new_tokens): prompts stay the real ones."""
    cfg = yaml.safe_load((TASKS_DIR / "flores.yaml").read_text(encoding="utf-8"))
    for section, values in CONFIG["task_overrides"].items():
        cfg[section].update(values)
    path = tmp_path / "flores.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


def test_small_run_matches_baseline(data_dir, tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["run", *CONFIG["args"], "--tasks", str(regression_task(tmp_path)), "--model", CONFIG["model"],
            "--output", str(out), "--data-dir", str(data_dir)]
    assert main(argv) == 0
    informative = informative_problems(out)
    if os.environ.get("HARNESS_BLESS") == "1":
        assert not informative, "not blessing an uninformative run:\n" + "\n".join(informative)
        shutil.rmtree(BASELINE, ignore_errors=True)
        shutil.copytree(out, BASELINE)
        pack(BASELINE)
    assert (BASELINE / "results.json").exists(), \
        "no baseline: run HARNESS_BLESS=1 python -m pytest tests/test_regression.py"
    capsys.readouterr()
    code = main(["compare", str(BASELINE), str(out), *CONFIG["compare_args"], "--json", str(tmp_path / "compare.json")])
    report = capsys.readouterr()
    result = json.loads((tmp_path / "compare.json").read_text()) if code in (0, 1) else {"notes": []}
    stale = [n for n in result["notes"] if "but results.json says" in n]
    problems = informative + stale + ([f"harness compare exited {code}"] if code else [])
    assert not problems, (f"regression against {BASELINE}:\n" + "\n".join(problems) + "\n" + report.out + report.err
                          + "\n(intended? re-bless: HARNESS_BLESS=1 python -m pytest tests/test_regression.py)")
    assert result["tasks"] == ["flores"] and {x["what"]: x["total"] for x in result["exact"]} == \
        {"prompts": 16, "outputs": 16}
