"""Methods deliberately not run (not_run.json): one "not run" row each, in the section of its model, with the reason.

Such a row has no cells and no composites: it never enters the Pareto plot, the seed spread or any interval.
"""

from __future__ import annotations

from leaderboard.build import RowResult, Table
from leaderboard.collect import NotRun


def attach(tables: list[Table], entries: list[NotRun]) -> None:
    """Add each entry as a row after its model's last row in the first section that has that model, and a note.
    No section with the model (its folder group holds no results of it): only a note. A (method, model) with
    results, or given twice: the results or the first file win, and a note says so."""
    seen: set[tuple[str, str]] = set()
    for nr in entries:
        if (nr.method, nr.model) in seen:
            tables[0].notes.append(f"{nr.method} on {nr.model}: another {nr.path.name} at {nr.path}; "
                                   f"the first one is shown")
            continue
        seen.add((nr.method, nr.model))
        table = next((t for t in tables if any(r.model == nr.model for r in t.rows)), None)
        if table is None:
            tables[0].notes.append(f"{nr.method} on {nr.model}: not run: {nr.reason} ({nr.path}); no row, because "
                                   f"these folders hold no results of {nr.model}")
            continue
        if any(r.method == nr.method and r.model == nr.model for t in tables for r in t.rows):
            table.notes.append(f"{nr.method} on {nr.model}: {nr.path} says not run, but results of it were found; "
                               f"they are shown (delete the stale {nr.path.name})")
            continue
        last = max(i for i, r in enumerate(table.rows) if r.model == nr.model)
        table.rows.insert(last + 1, RowResult(nr.method, nr.method, nr.model, False, not_run=nr.reason))
        table.notes.append(f"{nr.method} on {nr.model}: not run: {nr.reason} ({nr.path})")
