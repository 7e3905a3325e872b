"""The reader side of a run folder: results.json, a task's samples.jsonl and its run.json fingerprint.

Nothing here writes; `leaderboard/` imports only this module (the writer is harness.rundir.write).
"""

from __future__ import annotations

import json
from pathlib import Path

from harness.errors import HarnessError
from harness.io import read_json

SCHEMA = "mt-harness/results/v1"  # results.json's "schema"; change it only with a reader for the old one


def read_results(path: str | Path) -> dict | None:
    """A results.json as a dict; None when the file is JSON but not a SCHEMA results file (callers decide
    whether to skip it or stop); a HarnessError naming the field when a required part is missing."""
    res = read_json(path)
    if not isinstance(res, dict) or res.get("schema") != SCHEMA:
        return None
    for k in ("method", "model", "tasks"):
        if not isinstance(res.get(k), dict):
            raise HarnessError(f"{path}: field {k!r} missing; rerun `harness run` or `harness score` to rewrite it")
    return res


def samples_path(run_dir: Path, task: str, entry: dict) -> Path:
    """Where a results.json task entry's per-sample records are."""
    return Path(run_dir) / entry.get("samples_file", f"{task}/samples.jsonl")


def read_samples(path: Path) -> dict[str, dict]:
    """Per-sample records by id, read only: a torn last line is ignored (as `harness run` would cut it); a bad
    line elsewhere is an error naming the file and line."""
    records: dict[str, dict] = {}
    lines = Path(path).read_text(encoding="utf-8").split("\n")
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except ValueError:
            if i == len(lines) - 1:
                continue
            raise HarnessError(f"{path}: line {i + 1} is not valid JSON; rerun `harness run` to repair") from None
        records[rec["id"]] = rec
    return records


def read_fingerprint(task_dir: Path) -> dict:
    """The run.json fingerprint of what produced a task folder's samples ({} when there is none)."""
    path = Path(task_dir) / "run.json"
    return read_json(path) if path.exists() else {}
