"""The run folder's layout: the one place that names its files.

    OUT/results.json            every task's entry (harness.rundir.write.merge_entry)   | OUT/not_run.json instead
    OUT/<task>/samples.jsonl    per-sample records, appended as they are made (.jsonl.gz once `harness pack`ed)
    OUT/<task>/run.json         the fingerprint of what produced the samples (resuming needs it equal)
    OUT/<task>/drift.json       judge-free drift versus the base model's answers (MT-Bench, AlpacaEval)
    OUT/<task>/judgments.jsonl  the judge's answers, keyed by judge identity, prompt hash and replicate
    OUT/<lmeval task>/requests.jsonl  lm-eval's requests and the model's answers (resume)
"""

from __future__ import annotations

from pathlib import Path

RESULTS_FILE = "results.json"
NOT_RUN_FILE = "not_run.json"
SAMPLES_FILE = "samples.jsonl"
FINGERPRINT_FILE = "run.json"
DRIFT_FILE = "drift.json"
JUDGMENTS_FILE = "judgments.jsonl"
LMEVAL_REQUESTS_FILE = "requests.jsonl"


def results_file(out: str | Path) -> Path:
    return Path(out) / RESULTS_FILE


def task_dir(out: str | Path, task: str) -> Path:
    return Path(out) / task


def samples_file(out: str | Path, task: str) -> Path:
    return Path(out) / task / SAMPLES_FILE


def drift_file(out: str | Path, task: str) -> Path:
    return Path(out) / task / DRIFT_FILE
