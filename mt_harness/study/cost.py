"""The study's cost: estimates for the ETA, and COST.md (wall time per unit and phase) from the units' phases.json.

A record's time is its measured `seconds` plus `estimated_extra_seconds` (attempts that did not finish: from their
heartbeat files, mt_harness.study.attempt, or estimated by hand for older runs; its `note` says how, and the cell is
starred).
"""

from __future__ import annotations

from harness.rundir.phases import read_phases
from mt_harness.study.plan import Unit
from mt_harness.study.spec import TRAIN, StudySpec

GUESS_SECONDS = 1200.0  # a phase never measured in this study


def fmt(seconds: float) -> str:
    return f"{int(seconds // 3600)}h{int(seconds % 3600 // 60):02d}m"


def spent_on(rec: dict) -> float:
    return rec["seconds"] + rec.get("estimated_extra_seconds", 0.0)


def records(units: list[Unit]) -> dict[str, dict]:
    """{unit key: its phases.json}; the key is the unit name, or model/unit for a model other than the first."""
    first = units[0].model if units else None
    return {(u.name if u.model == first else u.key): read_phases(u.out) for u in units}


def estimate(phase_name: str, method: str, units: list[Unit], recs: dict[str, dict]) -> float:
    """Mean measured time of the same phase in the study (training: of the same method), else a guess."""
    seen = [spent_on(r[phase_name]) for u, r in zip(units, recs.values()) if phase_name in r
            and (phase_name != TRAIN or u.entry.method == method)]
    return sum(seen) / len(seen) if seen else GUESS_SECONDS


def pending_seconds(units: list[Unit], recs: dict[str, dict] | None = None) -> float:
    recs = records(units) if recs is None else recs
    return sum(estimate(p.name, p.method, units, recs) for u in units for p in u.phases if not p.done)


def _threads_note(rec: dict, threads: int) -> str:
    """A note when the phase ran with another torch thread count than the study's (its recorded command says)."""
    cmd = rec.get("command") or []
    ran = cmd[cmd.index("--threads") + 1] if "--threads" in cmd[:-1] else None
    if ran is None or int(ran) == threads:
        return ""
    return f"ran with {ran} torch thread(s), not the study's {threads}"


def _note(rec: dict, threads: int) -> str:
    """The cell's footnote: the record's own note and the thread-count note, either may be empty."""
    return "; ".join(n for n in (rec.get("note", ""), _threads_note(rec, threads)) if n)


def report(spec: StudySpec, units: list[Unit], workers: int) -> str:
    recs = records(units)
    phases = [TRAIN, *(b.name for b in spec.evaluation)]
    threads = "one torch thread" if spec.threads == 1 else f"{spec.threads} torch threads"
    lines = [f"# {spec.title}: wall time per unit and phase ({threads} per process, {workers} at a time)", "",
             "| unit | " + " | ".join(phases) + " | total |", "|---" * (len(phases) + 2) + "|"]
    notes: list[str] = []
    for (key, d), u in zip(recs.items(), units):
        if u.entry.not_run:
            lines.append(f"| {key} | not run: {u.entry.not_run} |" + " |" * len(phases))
            continue
        mine = {p.name for p in u.phases}
        said = {p: _note(d[p], spec.threads) for p in phases if p in d}
        cells = [fmt(spent_on(d[p])) + ("*" if said[p] else "") if p in d
                 else ("n/a" if p not in mine and p != TRAIN else "-" if p not in mine else "pending") for p in phases]
        lines.append(f"| {key} | " + " | ".join(cells) + f" | {fmt(sum(map(spent_on, d.values())))} |")
        notes += [f"{key}/{p}: {note}" for p, note in said.items() if note]
    spent = sum(spent_on(v) for d in recs.values() for v in d.values())
    left = pending_seconds(units, recs)
    lines += ["", (f"Process time measured so far: {fmt(spent)}; pending phases, estimated from the measured means of "
              f"the same phase (train: of the same method): {fmt(left)}. The whole study at {workers} worker(s) "
              f"sharing the machine: about {fmt((spent + left) / workers)} of wall time.")]
    lines += [""] + [f"\\* {n}" for n in notes] if notes else []
    return "\n".join(lines) + "\n"
