"""Stale rows: a row whose runs recorded another method variant than the one its recipe gives today.

results.json records `method.variant`, the hash of the method config's fields (harness.method.config_variant). The
application (mt_harness/staleness.py, which may read the method registry) computes, per run folder, the variant the
same recipe (`--method-config`, `--budget`) gives with the current defaults and passes it here as `Expected`; this
module only marks. A row is stale when any of its run folders was trained with a config that differs from today's
(`Expected.changed`, the differing fields; the variant hash alone cannot tell for results written before `variant`
was recorded, whose config also carries the trainer's reports): the page flags it
(leaderboard/page_tables.py reads `RowResult.stale`), Markdown gets a note and the CSV a `stale` field.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from leaderboard.build import Table


@dataclass(frozen=True)
class Expected:
    variant: str  # the variant the run's recipe gives with today's method defaults
    recipe: str  # the recipe in words ("methods/radis/recipes/cpu-150.yaml", "defaults", "--budget small")
    # the config fields whose recorded value differs from today's ("lr 0.001 -> 0.0001"); "" = the run is current
    changed: str = ""
    unknown: str = ""  # why the recipe could not be rebuilt (then `variant` is "" and the row is not checked)


def run_key(run_dir: Path | str) -> str:
    """How run folders are matched between the application and the leaderboard."""
    return str(Path(run_dir).resolve())


def mark_stale(tables: list[Table], expected: dict[str, Expected]) -> None:
    """Set `stale` (the explanation) on every row trained with a method variant other than its recipe's current one,
    and add one table note per stale row."""
    for t in tables:
        unchecked: dict[str, list[str]] = {}
        for r in t.rows:
            if r.not_run or r.is_base:
                continue
            for tr in r.tasks.values():
                exp = expected.get(run_key(tr.run_dir))
                if exp is not None and exp.unknown:
                    unchecked.setdefault(exp.unknown, []).append(f"{r.label} on {r.model}")
                    break
                if exp is None or not exp.changed:
                    continue
                r.stale = (f"trained with an older default: {exp.recipe} with today's {r.method} defaults gives "
                           f"variant {exp.variant}, this run recorded {r.variant or '(none)'} ({exp.changed}); "
                           f"re-run {_shown(tr.run_dir)}")
                t.notes.append(f"{r.label} on {r.model}: stale: {r.stale}")
                break
        t.notes += [f"stale-row check not possible for {', '.join(dict.fromkeys(rows))}: {why}"
                    for why, rows in unchecked.items()]


def _shown(path) -> str:
    """A run folder as a committed board shows it: relative to the working folder when inside it (a study rebuilds
    its board from absolute paths), else as it is."""
    rel = os.path.relpath(path)
    return str(path) if rel.startswith("..") else rel
