"""The science run (issue #12 §4): every method on an equal training budget, every method on the same samples.

    python results/science.py                # run or resume everything (prints the plan, then an ETA per phase)
    python results/science.py --jobs 2       # two units at once, one torch thread each (same results, faster)
    python results/science.py --plan         # the plan and what is done, without running anything
    python results/science.py --report       # cost per unit and phase -> results/science/COST.md
    python results/science.py --only sft-s0  # one unit

A *unit* is one trained artifact (a method and a seed); its *phases* are `harness train` and one `harness run` per
evaluation block, all writing into results/science/<model>/<unit>/. A finished phase is recorded, with its wall time,
command and git commit, in that folder's phases.json; a rerun skips finished phases, and an interrupted phase resumes
from its samples.jsonl (harness run is crash-safe). The trained artifact lives in $HARNESS_CACHE: a new machine
retrains it, deterministically for a given seed and thread count (fixed to one torch thread per process here).

Budget (methods/<m>/recipes/cpu-150.yaml): 1200 ALMA pairs (300 per direction de-en, en-de, zh-en, en-zh, FLORES
excluded), 150 optimizer steps of batch 8. Evaluation: FLORES de<->en and zh<->en (200 lines each), HellaSwag, ARC-E,
ARC-C, PIQA, WinoGrande (500 each), IFEval (all 541), AdvBench (first 250) and XSTest (all 450: the safety task's
--limit is per subset), MT-Bench (all 80, drift against the base run's answers). XBridge is not run: no NMT
encoder-decoder is reachable offline (methods/xbridge/README.md); a run (and --report) writes that reason to
results/science/<model>/xbridge/not_run.json, which the leaderboard shows as a "not run" row.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's harness (for the not_run.json writer), not an installed one
MODEL = "smollm2-135m-instruct"
OUT = ROOT / "results" / "science" / MODEL
PAIRS = "de-en,en-de,zh-en,en-zh"
BASE_UNIT = "base"

# evaluation blocks, in run order; mtbench last so that the base run's answers (its drift reference) exist
EVAL = {
    "flores": ["--tasks", "flores", "--langs", PAIRS, "--limit", "200"],
    "multiple_choice": ["--tasks", "hellaswag,arc_easy,arc_challenge,piqa,winogrande", "--limit", "500"],
    "ifeval": ["--tasks", "ifeval"],
    "safety": ["--tasks", "safety", "--langs", "advbench,xstest_safe,xstest_unsafe", "--limit", "250"],
    "mtbench": ["--tasks", "mtbench"],
}
# first-guess seconds per phase at one thread, replaced by the mean of measured phases as they finish
GUESS = {"train": 900, "flores": 1200, "multiple_choice": 900, "ifeval": 2400, "safety": 1500, "mtbench": 1500}


@dataclass(frozen=True)
class Unit:
    name: str
    method: str
    seed: int = 0
    recipe: bool = True  # methods/<method>/recipes/cpu-150.yaml
    eval_args: tuple[str, ...] = ()  # extra harness run arguments
    skip: tuple[str, ...] = ()  # evaluation blocks the method cannot serve (said in the report)
    not_run: str = ""  # why the method is deliberately not run at all (written to <out>/not_run.json)

    @property
    def out(self) -> Path:
        return OUT / self.name

    def phases(self) -> list[str]:
        if self.not_run:
            return []
        return (["train"] if self.recipe else []) + [p for p in EVAL if p not in self.skip]


UNITS = [
    Unit(BASE_UNIT, "base", recipe=False),
    Unit("sft-s0", "sft", 0), Unit("radis-s0", "radis", 0), Unit("lora-s0", "lora", 0),
    Unit("landermt-s0", "landermt", 0), Unit("lms-s0", "lms", 0),
    # batch 32 was OOM-killed at 14 GB (two models). Outside translation the relay answers with the frozen --model
    # alone: its general ability is the base model's by construction (the committed small run's safety answers are
    # identical to base's), so only FLORES is evaluated; its backend could not score log-likelihoods or expose one
    # model's weights for drift anyway (methods/relay/README.md)
    Unit("relay-s0", "relay", 0, eval_args=("--batch-size", "8"), skip=("multiple_choice", "ifeval", "safety", "mtbench")),
    Unit("sft-s1", "sft", 1), Unit("sft-s2", "sft", 2), Unit("radis-s1", "radis", 1), Unit("radis-s2", "radis", 2),
    Unit("xbridge", "xbridge", recipe=False,
         not_run="no NMT encoder-decoder is reachable offline (methods/xbridge/README.md)"),
]


def write_not_run(units: list[Unit]) -> None:
    """<out>/not_run.json for each unit that is never run (an existing one is kept), so the leaderboard shows it."""
    from harness.rundir.write import write_not_run as write

    for u in units:
        if u.not_run:
            write(u.out, u.method, MODEL, u.not_run)


def command(unit: Unit, phase: str) -> list[str]:
    cmd = [sys.executable, "-m", "mt_harness.cli"]
    common = ["--method", unit.method, "--model", MODEL, "--seed", str(unit.seed), "--threads", "1"]
    if unit.recipe:
        common += ["--method-config", f"methods/{unit.method}/recipes/cpu-150.yaml"]
    if phase == "train":
        return cmd + ["train", *common, "--tasks", "flores", "--langs", PAIRS]
    args = cmd + ["run", *common, *EVAL[phase], *unit.eval_args, "--output", str(unit.out.relative_to(ROOT))]
    if phase == "mtbench" and unit.name != BASE_UNIT:
        args += ["--drift-ref", str((OUT / BASE_UNIT).relative_to(ROOT))]
    return args


def done(unit: Unit) -> dict:
    path = unit.out / "phases.json"
    return json.loads(path.read_text()) if path.exists() else {}


_lock = threading.Lock()


def record(unit: Unit, phase: str, seconds: float, cmd: list[str], artifact: str = "") -> None:
    with _lock:
        state = done(unit)
        git = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout
        state[phase] = {"seconds": round(seconds, 1), "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                        "git": git.strip(), "command": ["harness", *cmd[3:]]}
        if artifact:
            state[phase]["artifact_hash"] = artifact
        unit.out.mkdir(parents=True, exist_ok=True)
        (unit.out / "phases.json").write_text(json.dumps(state, indent=1) + "\n")


def estimate(phase: str, unit: Unit) -> float:
    seen = [d[phase]["seconds"] for u in UNITS for d in [done(u)] if phase in d
            and (phase != "train" or u.method == unit.method)]
    return sum(seen) / len(seen) if seen else GUESS[phase]


def remaining(units: list[Unit], jobs: int) -> float:
    return sum(estimate(p, u) for u in units for p in u.phases() if p not in done(u)) / jobs


def fmt(seconds: float) -> str:
    return f"{int(seconds // 3600)}h{int(seconds % 3600 // 60):02d}m"


def run_phase(unit: Unit, phase: str, units: list[Unit], jobs: int, t0: float) -> str:
    """Run one phase (its output appended to logs/<phase>.log); returns the log text of this run."""
    cmd = command(unit, phase)
    print(f"[science {fmt(time.time() - t0)} elapsed, ~{fmt(remaining(units, jobs))} left] {unit.name}/{phase}: "
          f"harness {' '.join(cmd[3:])}", flush=True)
    start = time.time()
    log = unit.out / "logs" / f"{phase}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    proc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    with open(log, "a") as fh:
        fh.write(proc.stdout)
    if proc.returncode != 0:
        raise SystemExit(f"science: {unit.name}/{phase} failed (exit {proc.returncode}); see {log.relative_to(ROOT)}")
    record(unit, phase, time.time() - start, cmd, artifact_hash(proc.stdout) if phase == "train" else "")
    return proc.stdout


def artifact_hash(train_output: str) -> str:
    found = re.findall(r"artifact: .+? \(kind \w+, config hash \w+, hash (\w+)\)", train_output)
    if not found:
        raise SystemExit("science: `harness train` printed no artifact line")
    return found[-1]


def run_unit(unit: Unit, units: list[Unit], jobs: int, t0: float) -> None:
    state = done(unit)
    todo = [p for p in unit.phases() if p not in state]
    if unit.recipe and "train" in state and todo and any(p in state for p in EVAL):
        # a new machine has no cached artifact: retrain (or find it), and only keep evaluations of the same weights
        results = unit.out / "results.json"
        before = state["train"].get("artifact_hash") or (
            json.loads(results.read_text())["method"]["artifact"]["hash"] if results.exists() else None)
        cmd = command(unit, "train")
        env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
        out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        if out.returncode != 0:
            raise SystemExit(f"science: {unit.name}/train failed (exit {out.returncode}): {out.stderr[-500:]}")
        now = artifact_hash(out.stdout)
        if before != now:
            stale = unit.out.with_name(f"{unit.name}.stale-{before}")
            print(f"science: {unit.name}: retrained weights differ ({now} vs {before}); its evaluations move to "
                  f"{stale.relative_to(ROOT)} and run again", flush=True)
            unit.out.rename(stale)
    for phase in unit.phases():
        if phase in done(unit):
            continue
        if phase == "mtbench" and unit.name != BASE_UNIT:
            base = next(u for u in UNITS if u.name == BASE_UNIT)
            while "mtbench" not in done(base):  # the drift reference is the base run's answers
                time.sleep(30)
        run_phase(unit, phase, units, jobs, t0)


def spent_on(rec: dict) -> float:
    """A phase's time: measured seconds, plus the estimated time of an attempt that was interrupted and not
    logged (`estimated_extra_seconds`; its `note` says how it was estimated)."""
    return rec["seconds"] + rec.get("estimated_extra_seconds", 0.0)


def report(units: list[Unit]) -> str:
    phases = ["train", *EVAL]
    notes: list[str] = []
    lines = ["# Science run: wall time per unit and phase (one torch thread per process, 2-core CPU)", "",
             "| unit | " + " | ".join(phases) + " | total |", "|---" * (len(phases) + 2) + "|"]
    for u in units:
        if u.not_run:
            lines.append(f"| {u.name} | not run: {u.not_run} |" + " |" * len(phases))
            continue
        d = done(u)
        cells = [fmt(spent_on(d[p])) + ("*" if "note" in d[p] else "") if p in d
                 else ("n/a" if p in u.skip else "-" if p not in u.phases() else "pending") for p in phases]
        lines.append(f"| {u.name} | " + " | ".join(cells) + f" | {fmt(sum(map(spent_on, d.values())))} |")
        notes += [f"{u.name}/{p}: {d[p]['note']}" for p in phases if p in d and "note" in d[p]]
    spent = sum(spent_on(v) for u in units for v in done(u).values())
    left = sum(estimate(p, u) for u in units for p in u.phases() if p not in done(u))
    lines += ["", f"Process time measured so far: {fmt(spent)}; pending phases, estimated from the measured means of "
              f"the same phase (train: of the same method): {fmt(left)}. The whole run at --jobs 2 (two processes "
              f"sharing the two cores, as measured): about {fmt((spent + left) / 2)} of wall time."]
    lines += [""] + [f"\\* {n}" for n in notes] if notes else []
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--jobs", type=int, default=1, help="units run at once (one torch thread each)")
    ap.add_argument("--only", default=None, help="comma-separated unit names")
    ap.add_argument("--plan", action="store_true", help="print the plan and progress, run nothing")
    ap.add_argument("--report", action="store_true", help="write results/science/COST.md and print it")
    args = ap.parse_args()
    units = [u for u in UNITS if not args.only or u.name in args.only.split(",")]
    if args.only and len(units) != len(args.only.split(",")):
        known = ", ".join(u.name for u in UNITS)
        raise SystemExit(f"science: --only {args.only}: unknown unit (known: {known})")
    if args.report:
        write_not_run(UNITS)
        text = report(UNITS)
        (OUT.parent / "COST.md").write_text(text)
        print(text)
        return 0
    for u in units:
        if u.not_run:
            print(f"{u.name:12s} {u.method:9s} not run: {u.not_run}")
            continue
        todo = [p for p in u.phases() if p not in done(u)]
        print(f"{u.name:12s} {u.method:9s} seed {u.seed}  to do: {', '.join(todo) or 'nothing'}")
    print(f"estimated: {fmt(remaining(units, args.jobs))} at --jobs {args.jobs}")
    if args.plan:
        return 0
    write_not_run(units)
    t0 = time.time()
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        for fut in [pool.submit(run_unit, u, units, args.jobs, t0) for u in units if not u.not_run]:
            fut.result()
    print(report(units))
    return 0


if __name__ == "__main__":
    sys.exit(main())
