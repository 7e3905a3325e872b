"""The study's driver: plan, then run every pending phase as soon as its dependencies are done (scheduled by
phase, not by unit: no worker idles while a phase is ready), record each finished phase in its unit's phases.json,
regenerate COST.md, and rebuild the leaderboard at the end.

Phases of one unit run one at a time (they merge their entries into the unit's one results.json); phases of
different units run side by side. Only the driver writes phases.json and COST.md; workers write their run folders
through `mt_harness.api` (i.e. harness/rundir). A crashed worker's phase is started again (up to `retries` times)
and resumes from its samples.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from harness.errors import HarnessError
from harness.io import atomic_write_text
from harness.rundir.phases import attempt_file
from mt_harness.study.attempt import HEARTBEAT_SECONDS, read_attempts
from mt_harness.study.cost import fmt, pending_seconds, report
from mt_harness.study.plan import Phase, Unit, build_units, plan
from mt_harness.study.spec import TRAIN, StudySpec


@dataclass
class StudyOptions:
    executor: str = "local"  # or "ray"
    workers: int | None = None  # local: phases at once (default: the study's `workers`)
    threads: int | None = None  # local: torch threads per phase (default: the study's `threads`)
    address: str | None = None  # ray: cluster address (auto, ray://host:10001); default: a local Ray instance
    dry_run: bool = False
    rerun_stale: bool = False  # re-run units trained with another config than their recipe gives today
    only: list[str] | None = None  # run the phases of these units only (names, e.g. landermt-s0); default: all
    api: str = "mt_harness.api"  # the module whose RunSpec/train/run/leaderboard the phases call


@dataclass
class StudyResult:
    units: list[Unit]
    ran: list[str]  # ids of the phases run
    cost: Path | None  # COST.md
    leaderboard: list[Path]


def _log(p: Phase) -> Path:
    """The phase's log (its worker's output; the heartbeat file lies beside it)."""
    return p.out / "logs" / f"{p.name}.log"


def _unfinished(p: Phase) -> str:
    """What earlier attempts of a phase left (its heartbeat file: mt_harness.study.attempt), for the plan."""
    tried = read_attempts(attempt_file(_log(p)))
    if not tried:
        return ""
    ago = (datetime.now(timezone.utc) - datetime.fromisoformat(tried[-1]["alive"])).total_seconds()
    running = not tried[-1]["ended"] and ago < 3 * HEARTBEAT_SECONDS  # beating now: another driver runs it
    killed = tried[:-1] if running else tried
    text = "; running now (heartbeat %.0f s ago)" % ago if running else ""
    if killed:
        text += (f"; {len(killed)} earlier attempt(s) did not finish ({fmt(sum(a['seconds'] for a in killed))}, "
                 f"last heartbeat {killed[-1]['alive']}): " + ("the running attempt resumed" if running else
                                                      "the next attempt resumes") + " from what they saved")
    return text


def describe(units: list[Unit], workers: int) -> str:
    """The plan: every unit's phases, done or to do, with dependencies and the estimated time left."""
    lines = []
    for u in units:
        if u.entry.not_run:
            lines.append(f"{u.key}: not run: {u.entry.not_run}")
            continue
        lines.append(f"{u.key}: {u.entry.method}, seed {u.seed}")
        if u.stale:
            lines.append(f"  stale: trained with another config than its recipe gives today ({u.stale}); "
                         + ("re-run, the old results moved aside once retrained" if not any(p.done for p in u.phases)
                            else "`--rerun-stale` re-runs it"))
        for p in u.phases:
            after = f" (after {', '.join(p.deps)})" if p.deps and not p.done else ""
            lines.append(f"  {'done' if p.done else 'to do'}  {p.name}{after}{_unfinished(p) if not p.done else ''}")
    todo = sum(not p.done for u in units for p in u.phases)
    total = sum(len(u.phases) for u in units)
    lines.append(f"{total - todo} of {total} phases done, {todo} to do; "
                 f"estimated ~{fmt(pending_seconds(units) / workers)} at {workers} worker(s)")
    return "\n".join(lines)


def payload(spec: StudySpec, p: Phase, threads: int, api: str) -> dict:
    """What a worker needs, as plain data with absolute paths (a Ray node may have another working folder)."""
    from harness.data import DataSource
    from harness.models import cache_dir

    data = DataSource.resolve(spec.data_dir).root
    env = {"HARNESS_CACHE": str(cache_dir().resolve())}
    if data is not None:
        env["HARNESS_DATA_DIR"] = str(data)
    fields = {"tasks": list(p.tasks), "method": p.method, "model": p.model, "langs": list(p.langs),
              "method_config": str(Path(p.method_config).resolve()) if p.method_config else None,
              "method_options": dict(p.options), "seed": p.seed, "data_dir": str(data) if data else None,
              "settings": {**vars(p.settings), "threads": threads}}
    if p.kind != TRAIN:
        fields.update(limit=p.limit, output=str(p.out.resolve()),
                      drift_ref=str(p.drift_ref.resolve()) if p.drift_ref else None)
        if p.chunk_size:
            fields["chunk_size"] = p.chunk_size
    return {"id": p.id, "kind": p.kind, "spec": fields, "threads": threads, "env": env, "cwd": os.getcwd(),
            "api": api, "command": p.command(threads), "log": str(_log(p).resolve())}


def _record(p: Phase, outcome: dict, seconds: float, attempts: int, threads: int) -> None:
    from harness import provenance
    from harness.rundir.phases import read_phases, record_phase

    old = read_phases(p.out).get(p.name)
    rec = {"seconds": round(seconds, 1), "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
           "git": (provenance.git_state().get("commit") or "")[:7], "command": p.command(threads)}
    earlier = outcome.get("earlier") or []
    if earlier:
        attempts = max(attempts, len(earlier) + 1)
    if attempts > 1:
        rec["attempts"] = attempts
    notes = []
    if earlier:
        rec["estimated_extra_seconds"] = round(sum(e["seconds"] for e in earlier), 1)
        notes.append(f"includes {rec['estimated_extra_seconds']:.0f} s of {len(earlier)} earlier attempt(s) that did "
                     f"not finish (" + "; ".join(f"git {e['git']}, {e['started']} to its last heartbeat {e['alive']}"
                                                  for e in earlier) +
                     f"), from their heartbeat files (to within {HEARTBEAT_SECONDS:.0f} s each)")
    stopped = outcome.get("stopped_seconds", 0) + sum(e.get("stopped_seconds", 0) for e in earlier)
    if stopped:
        notes.append(f"excludes {stopped:.0f} s during which the process was stopped (SIGSTOP or suspended)")
    if notes:
        rec["note"] = "; ".join(notes)
    if p.kind == TRAIN:
        art = outcome["artifact"]
        rec.update(artifact_hash=art["hash"], artifact_path=art["path"])
        if old and old.get("artifact_hash") == art["hash"]:
            rec = {**old, "artifact_path": art["path"]}  # found in the cache: keep what training cost
    record_phase(p.out, p.name, rec)


def _stale(unit: Unit, artifact: dict) -> Path | None:
    """Move a unit folder aside when its evaluations used other weights than the artifact just trained; when they
    used these weights, refresh results.json's method report from the artifact (a check added since they ran)."""
    from harness.rundir.phases import move_aside
    from harness.rundir.layout import results_file
    from harness.rundir.read import read_results
    from harness.rundir.write import refresh_report
    from harness.training.artifacts import load_artifact

    path = results_file(unit.out)
    res = read_results(path) if path.is_file() else None
    used = (res or {}).get("method", {}).get("artifact", {}).get("hash")
    if not used:
        return None
    if used == artifact["hash"]:
        found = load_artifact(Path(artifact["path"]), verify=False) if artifact.get("path") else None
        if found is not None and found.hash == used:
            refresh_report(unit.out, found.report, str(found.path))
        return None
    moved = move_aside(unit.out, used, keep=(f"logs/{TRAIN}.log",))  # the new training's log stays with the unit
    for q in unit.phases:
        q.done = q.done and q.kind == TRAIN
    return moved


def run_study(spec: StudySpec, opts: StudyOptions) -> StudyResult:
    from tqdm import tqdm

    from mt_harness.study.executors import make_executor

    workers = opts.workers or spec.workers
    threads = opts.threads or spec.threads
    if workers < 1 or threads < 1:
        raise HarnessError("--workers and --threads must be >= 1")
    if opts.only:
        names = list(dict.fromkeys(u.name for u in build_units(spec)))
        unknown = sorted(set(opts.only) - set(names))
        if unknown:
            raise HarnessError(f"--only {','.join(unknown)}: no such unit in {spec.title!r} (units: "
                               f"{', '.join(names)})")
    units = plan(spec, opts.rerun_stale, opts.only)
    print(describe(units, workers), flush=True)
    if opts.dry_run:
        return StudyResult(units, [], None, [])
    if spec.leaderboard:  # the final rebuild's code, loaded now: edits made during a long study must not mix in
        _preload(opts)
    from harness.rundir.write import write_not_run

    for u in units:
        if u.entry.not_run:
            write_not_run(u.out, u.entry.method, u.model, u.entry.not_run)
    phases = {p.id: p for u in units for p in u.phases}
    unit_of = {p.id: u for u in units for p in u.phases}
    todo = [pid for pid, p in phases.items() if not p.done and (not opts.only or unit_of[pid].name in opts.only)]
    ran: list[str] = []
    cost_path = Path(spec.output) / "COST.md"
    executor = make_executor(opts.executor, workers, opts.address) if todo else None
    attempts: dict[str, int] = {}
    spent: dict[str, float] = {}  # wall time of every attempt, a killed one included
    started: dict[str, float] = {}
    order = {pid: i for i, pid in enumerate(phases)}
    needed = {d for p in phases.values() for d in p.deps}  # e.g. the base answers the drift phases wait for
    bar = tqdm(total=len(todo), desc="study phases", unit="phase", dynamic_ncols=True, disable=not todo)
    failure = None
    try:
        while todo or (executor and executor.running):
            ready = [pid for pid in todo if all(phases[d].done for d in phases[pid].deps)]
            if failure is None:  # training first, then what other phases wait for, then the study's order
                for pid in sorted(ready, key=lambda i: (phases[i].kind != TRAIN, i not in needed, order[i])):
                    if not executor.free():
                        break
                    p = phases[pid]  # a unit's evaluation blocks may run together (harness.rundir.lock)
                    t = int(p.resources.cpus) if executor.name == "ray" else threads
                    attempts[pid] = attempts.get(pid, 0) + 1
                    started[pid] = time.time()
                    executor.start(pid, payload(spec, p, t, opts.api), p.resources)
                    todo.remove(pid)
                    bar.write(f"[study] start {pid} (attempt {attempts[pid]}; "
                              f"log {_log(p)})")
            if not executor.running:
                if failure is None and todo:
                    raise HarnessError(f"study: {', '.join(todo)} wait for phases that cannot finish")
                break
            for pid, outcome in executor.wait():
                p = phases[pid]
                # the worker's own measure of a successful attempt; an attempt that failed or died left its heartbeat
                # file, which the next attempt reports (`earlier`); without one, the time since it was started
                if outcome["ok"] or not attempt_file(_log(p)).exists():
                    spent[pid] = spent.get(pid, 0.0) + (outcome.get("seconds") or time.time() - started[pid])
                if not outcome["ok"]:
                    if outcome.get("crashed") and attempts[pid] <= spec.retries and failure is None:
                        bar.write(f"[study] {pid}: {outcome['error']}; retrying (it resumes from its samples)")
                        todo.insert(0, pid)
                        continue
                    failure = failure or f"study: phase {pid} failed: {outcome['error']}"
                    bar.write(f"[study] {failure}")
                    continue
                if p.kind == TRAIN and (moved := _stale(unit_of[pid], outcome["artifact"])):
                    bar.write(f"[study] {p.unit}: retrained weights differ from those its results used; they "
                              f"moved to {moved} and its evaluations run again")
                    again = [q.id for q in unit_of[pid].phases if q.kind != TRAIN and q.id not in todo]
                    todo += again
                    bar.total += len(again)
                _record(p, outcome, spent[pid], attempts[pid], threads if executor.name == "local" else
                        int(p.resources.cpus))
                p.done = True
                ran.append(pid)
                bar.update(1)
                left = pending_seconds(units) / (workers if executor.name == "local" else max(1, len(executor.running)))
                bar.set_postfix_str(f"{pid} done; ~{fmt(left)} left (estimate)")
                atomic_write_text(cost_path, report(spec, units, workers))
    finally:
        bar.close()
        if executor is not None:
            executor.close()
    if failure:
        raise HarnessError(failure + "; rerun the study to resume")
    atomic_write_text(cost_path, report(spec, units, workers))
    written = _leaderboard(spec, opts) if spec.leaderboard else []
    return StudyResult(units, ran, cost_path, written)


def _preload(opts: StudyOptions) -> None:
    """Import now everything the final leaderboard rebuild imports (the leaderboard package, every registered method,
    whose config and mechanism check it reads, and every task module): code edited during a long study must not mix
    into its end (tests/test_mechanism.py checks that a board build after this imports nothing more)."""
    import importlib
    import pkgutil

    import leaderboard
    import tasks
    from methods import REGISTRY, method_class

    importlib.import_module(opts.api)
    importlib.import_module("mt_harness.mechanism")
    importlib.import_module("mt_harness.staleness")
    leaderboard.preload()
    for name in REGISTRY:
        method_class(name)
    for info in pkgutil.iter_modules(tasks.__path__):
        importlib.import_module(f"tasks.{info.name}")


def _leaderboard(spec: StudySpec, opts: StudyOptions) -> list[Path]:
    import importlib

    api = importlib.import_module(opts.api)
    _, written = api.leaderboard([spec.output], spec.output)
    return [Path(w) for w in written]
