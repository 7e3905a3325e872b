"""The reader side of a run folder: results.json, a task's samples.jsonl and its run.json fingerprint, or instead
of results.json a not_run.json (a method deliberately not run on a model, and why).

Nothing here writes; `leaderboard/` imports only this module (the writer is harness.rundir.write).
"""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path

from harness.errors import HarnessError
from harness.io import read_json, stable_hash
from harness.rundir.layout import FINGERPRINT_FILE, NOT_RUN_FILE, SAMPLES_FILE, drift_file, results_file

SCHEMA = "mt-harness/results/v1"  # results.json's "schema"; change it only with a reader for the old one
NOT_RUN_SCHEMA = "mt-harness/not-run/v1"
NOT_RUN_KEYS = ("schema", "method", "model", "reason")
_NOT_RUN_FIX = (f'write it as {{"schema": "{NOT_RUN_SCHEMA}", "method": "<method>", "model": "<model name>", '
                f'"reason": "<one line>"}}')


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


def method_variant(method: dict) -> str:
    """The method configuration a results.json's `method` stands for, without the training seed: its `variant`
    (`harness run` records the hash of the method config's own fields), else, for results written before
    2026-12-01, the hash of the recorded config without the `training_data` report the trainer joins to it (equal
    to `variant` unless the method joins reports of its own, e.g. LANDeRMT's `analysis`). Not the artifact's
    config hash: that one also covers the seed and the training pairs the seed sampled."""
    if "variant" in method:
        return method["variant"]
    chosen = {k: v for k, v in (method.get("config") or {}).items() if k != "training_data"}
    return stable_hash(chosen) if chosen else ""


def samples_path(run_dir: Path, task: str, entry: dict) -> Path:
    """Where a results.json task entry's per-sample records are."""
    return Path(run_dir) / entry.get("samples_file", f"{task}/{SAMPLES_FILE}")


def samples_bytes(path: Path) -> bytes:
    """A samples file's records as plain JSONL bytes: `<task>/samples.jsonl`, or `.jsonl.gz` as `harness pack`
    leaves it (harness.rundir.pack)."""
    data = Path(path).read_bytes()
    return gzip.decompress(data) if Path(path).suffix == ".gz" else data


def samples_sha256(path: Path) -> str:
    """sha256 of the plain records in either form (what results.json's samples_sha256 holds)."""
    return hashlib.sha256(samples_bytes(path)).hexdigest()


def read_samples(path: Path) -> dict[str, dict]:
    """Per-sample records by id, read only: a torn last line is ignored (as `harness run` would cut it); a bad
    line elsewhere is an error naming the file and line."""
    records: dict[str, dict] = {}
    lines = samples_bytes(path).decode("utf-8").split("\n")
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
    path = Path(task_dir) / FINGERPRINT_FILE
    return read_json(path) if path.exists() else {}


def check_not_run(data, path: str | Path) -> dict:
    """A not_run.json's content as given, or a one-line HarnessError naming the file, the fault and the fix."""
    if not isinstance(data, dict):
        raise HarnessError(f"{path}: not a JSON object; {_NOT_RUN_FIX}")
    if data.get("schema") != NOT_RUN_SCHEMA:
        raise HarnessError(f"{path}: schema {data.get('schema')!r}, expected {NOT_RUN_SCHEMA!r}; {_NOT_RUN_FIX}")
    missing = [k for k in NOT_RUN_KEYS if not isinstance(data.get(k), str) or not data[k].strip()]
    unknown = sorted(set(data) - set(NOT_RUN_KEYS))
    if missing or unknown:
        what = "; ".join(x for x in (f"missing or empty {', '.join(missing)}" if missing else "",
                                     f"unknown {', '.join(unknown)}" if unknown else "") if x)
        raise HarnessError(f"{path}: {what}; {_NOT_RUN_FIX}")
    if "\n" in data["reason"] or "\r" in data["reason"]:
        raise HarnessError(f"{path}: reason spans several lines; {_NOT_RUN_FIX}")
    return data


def read_not_run(path: str | Path) -> dict:
    """A not_run.json: {schema, method, model, reason}. Bad JSON, a missing or unknown key, a wrong schema, or a
    results.json beside it (the folder would say both) is a one-line HarnessError naming the file and the fix."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise HarnessError(f"{path}: not valid JSON ({e}); {_NOT_RUN_FIX}") from None
    check_not_run(data, path)
    if results_file(path.parent).exists():
        raise HarnessError(f"{path.parent}: holds both results.json and {NOT_RUN_FILE}; delete {NOT_RUN_FILE} if "
                           f"{data['method']} was run, or results.json if it was not")
    return data


def read_drift(out: str | Path, task: str) -> dict | None:
    """A task's drift.json (per-document sums `per_id`, the summary, or the `reason` drift is absent); None when the
    run has none (drift is computed by `harness run` for drift-capable tasks)."""
    path = drift_file(out, task)
    return read_json(path) if path.exists() else None
