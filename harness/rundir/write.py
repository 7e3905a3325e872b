"""The writer side of a run folder: results.json header and task entries, the run.json fingerprint check,
samples.jsonl rewritten after re-scoring or judging, and a finished run reopened for `harness score`/`judge`.

Every results.json write goes through `merge_entry`: the header (provenance, method, model, seed, limit) is
refreshed, the other tasks' entries are kept, and the file is replaced atomically. `ctx` is the run's
harness.rundir.context.EvalContext (out_dir, method, model, seed, limit, extra).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import provenance
from harness.errors import HarnessError
from harness.io import (
    JsonlStore,
    atomic_write_json,
    atomic_write_text,
    existing_dir,
    read_json,
    remove_stale_tmp,
    sha256_file,
    stable_hash,
)
from harness.rundir.context import EvalContext
from harness.rundir.lock import clear_tmp, folder_lock
from harness.rundir.layout import (
    FINGERPRINT_FILE,
    JUDGMENTS_FILE,
    LMEVAL_REQUESTS_FILE,
    SAMPLES_FILE,
    drift_file,
    results_file,
    samples_file,
)
from harness.rundir.read import (
    NOT_RUN_FILE,
    NOT_RUN_SCHEMA,
    SCHEMA,
    check_not_run,
    read_not_run,
    read_results,
    samples_path,
)
from harness.task import comparable_config, config_dict, Task


def check_fingerprint(task_dir: Path, fp: dict) -> None:
    """Record `fp` in <task_dir>/run.json, or refuse a folder whose samples another run produced."""
    from harness.rundir.pack import refuse_packed

    refuse_packed(task_dir, "running into it again")
    path = Path(task_dir) / FINGERPRINT_FILE
    if not path.exists():
        atomic_write_json(path, fp)
        return
    old = read_json(path)
    diff = sorted(k for k in fp if old.get(k) != fp[k])
    if diff:
        raise HarnessError(f"{task_dir}: holds samples from a different run ({', '.join(diff)} differ); "
                           f"use another --output or delete that folder")


def merge_entry(ctx, name: str, entry: dict, rescored: bool = False) -> dict:
    """Put one task's entry into `<out>/results.json` with a fresh header; other tasks' entries are kept.
    `rescored` (harness score / judge on saved samples): the header keeps the command and code that generated the
    samples, and `rescored` records the command and code that recomputed the metrics."""
    with folder_lock(ctx.out_dir):  # another process may be adding its tasks to the same folder
        return _merge_entry(ctx, name, entry, rescored)


def _merge_entry(ctx, name: str, entry: dict, rescored: bool) -> dict:
    path = results_file(ctx.out_dir)
    results = read_json(path) if path.exists() else {"schema": SCHEMA, "created": provenance.now(), "tasks": {}}
    if rescored and "command" in results:
        results["rescored"] = {"at": provenance.now(), "command": provenance.command_line(),
                               "git": provenance.git_state()}
        generated = {"command": results["command"], "git": results["git"], "limit": results["limit"]}
    else:
        generated = {"command": provenance.command_line(), "git": provenance.git_state()}
    results.update({
        "updated": provenance.now(),
        **generated,
        "versions": provenance.versions(),
        "machine": provenance.machine(),
        "method": ctx.method,
        "model": ctx.model,
        "seed": ctx.seed,
        "limit": ctx.limit,
        **ctx.extra,
        **generated,
    })
    results["tasks"][name] = entry
    atomic_write_json(path, results)
    return results


def refresh_report(out: str | Path, report: dict, source: str) -> bool:
    """Replace results.json's `method.artifact.report` (what training reported besides the config: RaDis's rationale
    statistics, LMS's route KL) with `report`, the report of the same artifact (same content hash) read from
    `source`; the scores, samples and the header's provenance are kept, and `report_refreshed` records when and by
    which code. For runs evaluated before a check existed whose artifact has it now. False when nothing changed."""
    with folder_lock(out):
        return _refresh_report(out, report, source)


def _refresh_report(out: str | Path, report: dict, source: str) -> bool:
    path = results_file(out)
    results = read_results(path)
    if results is None:
        raise HarnessError(f"{path}: not a {SCHEMA} results file; give a folder written by `harness run`")
    art = results["method"].get("artifact") or {}
    if (art.get("report") or {}) == report:
        return False
    art["report"] = report
    results["method"]["artifact"] = art
    results["report_refreshed"] = {"at": provenance.now(), "from": source, "command": provenance.command_line(),
                                   "git": provenance.git_state()}
    atomic_write_json(path, results)
    return True


def write_not_run(folder: str | Path, method: str, model: str, reason: str) -> Path:
    """Record in `folder`/not_run.json that `method` was deliberately not run on `model` and why (one line); the
    leaderboard shows it as a "not run" row. An existing not_run.json is kept (checked, not rewritten)."""
    path = Path(folder) / NOT_RUN_FILE
    if path.exists():
        read_not_run(path)
        return path
    if results_file(path.parent).exists():
        raise HarnessError(f"{path.parent}: holds results.json; {method} was run there, so no {NOT_RUN_FILE}")
    data = check_not_run({"schema": NOT_RUN_SCHEMA, "method": method, "model": model, "reason": reason}, path)
    atomic_write_json(path, data)
    return path


def write_results(ctx, task: Task, backend_settings: dict, agg: dict, seconds: float, rescored: bool = False) -> dict:
    """Merge a harness task's results (harness.runner.aggregate's `agg`) into `<out>/results.json`."""
    samples = samples_file(ctx.out_dir, task.name)
    return merge_entry(ctx, task.name, {
        "config": config_dict(task),
        "config_hash": stable_hash(comparable_config(task)),  # without method-set extraction options
        "backend": backend_settings,
        **agg,
        "metadata": task.metadata(),
        "limit": ctx.limit,  # this task's --limit (one folder may hold runs with different limits)
        "doc_limit": task.doc_limit,  # the group's default, used when --limit is not given
        "samples_file": f"{task.name}/{SAMPLES_FILE}",
        "samples_sha256": sha256_file(samples) if samples.exists() else None,
        "seconds": round(seconds, 2),
    }, rescored)


def write_samples(path: Path, records: Iterable[dict]) -> None:
    """Replace a samples.jsonl atomically (after re-scoring or judging; lm-eval's whole log at once)."""
    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))


@dataclass
class SavedRun:
    """A finished run folder reopened to re-score or judge its saved samples (no model, no generation)."""

    out: Path
    results: dict
    ctx: Any  # harness.rundir.context.EvalContext rebuilt from the results.json header

    def task_names(self, only: list[str] | None = None) -> list[str]:
        """The run's harness tasks (`lmeval:` entries are scored by lm-eval itself), or those of them in `only`."""
        return [n for n in self.results["tasks"] if not n.startswith("lmeval:") and (only is None or n in only)]

    def entry(self, name: str) -> tuple[dict, str]:
        """A task's results.json entry and where it is (for error messages)."""
        return self.results["tasks"][name], f"{self.out}/results.json"

    def context(self, comet=None):
        """The RunContext of a task rebuilt from this folder (judge-using tasks read drift.json from it)."""
        from harness.task import RunContext

        return RunContext(out_dir=self.out) if comet is None else RunContext(out_dir=self.out, comet=comet)

    def limit(self, name: str) -> int | None:
        """The --limit the task was evaluated with (entries before per-task limits: the header's)."""
        entry = self.results["tasks"][name]
        return entry["limit"] if "limit" in entry else self.results["limit"]

    def store(self, task: Task) -> JsonlStore:
        return JsonlStore(samples_path(self.out, task.name, self.results["tasks"][task.name]))

    def save(self, task: Task, agg: dict, seconds: float) -> dict:
        """Rewrite the task's results.json entry, keeping the backend settings of the run that generated it."""
        ctx = dataclasses.replace(self.ctx, limit=self.limit(task.name))
        self.results = write_results(ctx, task, self.results["tasks"][task.name]["backend"], agg, seconds,
                                     rescored=True)
        return self.results


def reopen(out: str | Path, command: str) -> SavedRun:
    """A finished run folder for `command` ("harness score:", "harness judge:"); stale temporary files of a
    run killed mid atomic write are removed first."""
    out = existing_dir(out, command)
    path = results_file(out)
    results = read_results(path)
    if results is None:
        raise HarnessError(f"{path}: not a {SCHEMA} results file; give a folder written by `harness run`")
    from harness.rundir.pack import refuse_packed

    for name, entry in results["tasks"].items():  # before any work: the saved samples are rewritten
        refuse_packed(samples_path(out, name, entry).parent, f"`{command.rstrip(':')}`")
    clear_tmp(out)
    for name in results["tasks"]:
        remove_stale_tmp(out / name)
    ctx = EvalContext(out_dir=out, method=results["method"], model=results["model"], seed=results["seed"],
                      limit=results["limit"])
    return SavedRun(out, results, ctx)


def open_samples(out: Path, task: str) -> JsonlStore:
    """A task's samples.jsonl for appending (a torn last line from a killed run is cut: `store.repaired`)."""
    return JsonlStore(samples_file(out, task))


def open_judgments(task_dir: Path) -> JsonlStore:
    """The task folder's judgments.jsonl (harness.judges.JudgmentCache), keyed by judgment key."""
    return JsonlStore(Path(task_dir) / JUDGMENTS_FILE, key_field="key")


def open_lmeval_requests(task_dir: Path) -> JsonlStore:
    """An lm-eval task folder's requests.jsonl (harness.lmeval_requests.RequestLog), keyed by request key."""
    return JsonlStore(Path(task_dir) / LMEVAL_REQUESTS_FILE, key_field="key")


def write_drift(out: Path, task: str, data: dict) -> None:
    """Replace a task's drift.json atomically: the drift summary with per-document sums, or {"reason": why none}."""
    atomic_write_json(drift_file(out, task), data)
