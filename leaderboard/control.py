"""Mechanism checks on the leaderboard: each row's check in words (`RowResult.mechanism`, a table note, a CSV field).

The application computes each run's check from its results.json `method` record (mt_harness/mechanism.py, the
method registry's `Method.mechanism`) and passes it in. One check needs samples and the paired bootstrap, so it is
computed here: a *control run* is a run whose recorded method config has `control` set (the relay's
`control: shuffled_source`: the same artifact, each translation line decoded from another line's source states).
A row and its control (same method, model and artifact content hash) are compared on the first translation chrF++
column, paired by sample with the task's shared resamples: an interval above 0 says the method carries source
content; anything else marks the row "no content transfer" with the numbers.
"""

from __future__ import annotations

from leaderboard.build import RowResult, Table
from leaderboard.cells import Evaluator, cell
from leaderboard.collect import method_record
from leaderboard.render import delta_text
from leaderboard.stale import run_key


def _artifact(r: RowResult) -> str:
    return str((method_record(r.tasks).get("artifact") or {}).get("hash", ""))


def control_check(ev: Evaluator, t: Table, r: RowResult, ctl: RowResult) -> str:
    """The row-vs-control verdict on the first translation chrF++ column (module docstring)."""
    col = next((c for c in t.columns if c.role == "translation" and c.kind == "corpus" and "chrF" in c.label), None)
    if col is None or col.task not in r.tasks or col.task not in ctl.tasks:
        return f"not checked: no translation chrF++ column shared with its control {ctl.label}"
    c = cell(ev, col, r, ctl)
    if c is None or c.delta is None or c.lo is None:
        return f"not checked: {col.label} not paired with its control {ctl.label} ({c.note if c else 'no value'})"
    diff = f"{col.label} minus its {ctl.control} control ({ctl.label}) {delta_text(c, col)}"
    if c.lo > 0:
        return f"content transfer: {diff}"
    return f"no content transfer: {diff}: the interval is not above 0"


def attach_mechanisms(tables: list[Table], texts: dict[str, str], n_boot: int, seed: int) -> None:
    """Set `mechanism` on every row from `texts` (run folder -> check) and from its control run when there is one;
    one table note per row with a check."""
    ev = Evaluator(n_boot, seed)
    for t in tables:
        rows = [r for r in t.rows if not r.not_run]
        for r in rows:  # every row's own check first: a control paired below keeps the pairing's text
            r.mechanism = next((texts[k] for tr in r.tasks.values() if (k := run_key(tr.run_dir)) in texts), "")
        controls = [r for r in rows if r.control]
        for r in rows:
            if r.control:
                continue
            ctl = next((c for c in controls if (c.method, c.model) == (r.method, r.model) and _artifact(c)
                        and _artifact(c) == _artifact(r)), None)
            if ctl is not None:
                r.mechanism = control_check(ev, t, r, ctl)
                ctl.mechanism = f"{ctl.control} control of {r.label} (same artifact): not a method row"
        t.notes += [f"{r.label} on {r.model}: mechanism check: {r.mechanism}" for r in t.rows if r.mechanism]
