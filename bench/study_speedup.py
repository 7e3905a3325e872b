"""A study unit evaluated by two code versions, side by side (issue 26: "the per-phase speed-up measured side by
side, old vs new code, on one unit"): each phase's wall time from the two folders' phases.json (the code's git
commit is in each record), and, per task, the share of samples whose outputs are identical (generation: the raw
text; log-likelihood: every choice's log-likelihood) and whether the task's metrics are equal (those that differ,
with both values).

    python bench/study_speedup.py OLD_UNIT NEW_UNIT        # e.g. the committed science base unit and
                                                           # the one bench/speedup-base.yaml wrote
Prints a markdown table for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.rundir.phases import read_phases
from harness.rundir.read import read_results, read_samples, samples_path


def _compared(rec: dict) -> object:
    return rec["loglik"] if "loglik" in rec else rec.get("raw", rec.get("outputs"))


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        out.update(_flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out


def _metric_diff(a: dict, b: dict) -> str:
    """"equal", or the metrics that differ with both values (a drift reference's path is not a metric)."""
    fa, fb = _flat(a), _flat(b)
    diff = [k for k in sorted(set(fa) | set(fb)) if fa.get(k) != fb.get(k) and not k.endswith("drift.ref")]
    if not diff:
        return "equal"
    return "differ: " + ", ".join(f"{k} {_show(fa.get(k))} vs {_show(fb.get(k))}" for k in diff)


def _show(value: object) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def task_rows(old: Path, new: Path, tasks: list[str]) -> list[str]:
    a, b = read_results(old / "results.json"), read_results(new / "results.json")
    rows = []
    for name in tasks:
        if name not in a["tasks"] or name not in b["tasks"]:
            rows.append(f"{name}: not in both folders")
            continue
        sa = read_samples(samples_path(old, name, a["tasks"][name]))
        sb = read_samples(samples_path(new, name, b["tasks"][name]))
        common = sorted(set(sa) & set(sb))
        same = sum(_compared(sa[i]) == _compared(sb[i]) for i in common)
        metrics = _metric_diff(a["tasks"][name]["metrics"], b["tasks"][name]["metrics"])
        rows.append(f"{name} {same}/{len(common)} identical, metrics {metrics}")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("old", type=Path)
    ap.add_argument("new", type=Path)
    args = ap.parse_args()
    old_ph, new_ph = read_phases(args.old), read_phases(args.new)
    print("| phase | old code | new code | old / new | outputs (old vs new) |")
    print("|---|---|---|---|---|")
    total_old = total_new = 0.0
    for phase in [p for p in old_ph if p in new_ph]:
        o, n = old_ph[phase], new_ph[phase]
        total_old, total_new = total_old + o["seconds"], total_new + n["seconds"]
        cmd = n["command"]
        tasks = cmd[cmd.index("--tasks") + 1].split(",") if "--tasks" in cmd else []
        print(f"| {phase} | {o['seconds']:.0f} s ({o.get('git', '?')}) | {n['seconds']:.0f} s ({n.get('git', '?')}) "
              f"| {o['seconds'] / n['seconds']:.2f}× | {'; '.join(task_rows(args.old, args.new, tasks))} |")
    if total_new:
        print(f"| all | {total_old:.0f} s | {total_new:.0f} s | {total_old / total_new:.2f}× | |")


if __name__ == "__main__":
    main()
