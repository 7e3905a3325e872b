"""Composites versus a reference method (default `sft`): does a method gain more, or lose less, than full fine-tuning?

Reading two Δ-versus-base intervals side by side is a weak test (overlapping intervals can still differ). Both rows
are paired with the same base run on the same samples, and every column draws the same resamples for every row
(leaderboard/stats.py), so the per-resample difference of two rows' composites is itself a paired bootstrap
distribution:

    D = composite(method) − composite(reference)     per resample; 95% interval as for every other Δ

Translation gain: D > 0 = gains more than the reference. General-ability loss: D < 0 = loses less. The reference
row is the reference method's run of the same base model *trained with the same seed* (so seed-to-seed variation of
both rows is not in the interval; the seed-spread notes show its size), else its only run, else none. Both
composites must be built from the same columns; otherwise no difference is given and a note says why.

A method variant trained with several seeds, each compared with the reference's run of the same seed, also gets a
*seed-mean* row ("radis mean of seeds 0, 1, 2" versus "sft mean of seeds 0, 1, 2"): per resample, the mean over
those seeds of D. Every row draws the same resamples, so this is still one paired bootstrap distribution: the two
methods' difference averaged over the same seeds. Seed-to-seed variation is averaged, not included in the interval
(the seed-spread notes show its size).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from leaderboard import stats
from leaderboard.build import RowResult, Table, seed_groups, variant_label
from leaderboard.cells import Cell
from leaderboard.columns import COMPOSITES


@dataclass
class Versus:
    """One row's composites minus its reference row's (`cells`: composite name → difference; `note`: why none)."""

    row: RowResult
    ref: RowResult | None
    cells: dict[str, Cell] = field(default_factory=dict)
    note: str = ""
    seeds: tuple[int, ...] = ()  # a seed-mean row: the seeds averaged (its row and ref are labels only, no cells)


def used_columns(rr: RowResult, t: Table, role: str) -> tuple[str, ...]:
    """The columns of `role` that entered this row's composite (those with a Δ and a bootstrap distribution)."""
    return tuple(c.label for c in t.columns if c.role == role and c.label in rr.cells
                 and rr.cells[c.label].delta is not None and rr.cells[c.label].boot is not None)


def difference(rr: RowResult, ref: RowResult, t: Table, name: str) -> Cell | None:
    a, b = rr.composites.get(name), ref.composites.get(name)
    if a is None or b is None or a.boot is None or b.boot is None:
        return None
    if used_columns(rr, t, COMPOSITES[name]) != used_columns(ref, t, COMPOSITES[name]):
        return Cell(note=f"{name}: built from other columns than {ref.label}'s; not compared")
    boot = a.boot - b.boot
    lo, hi = stats.interval(boot)
    return Cell(a.value - b.value, a.value - b.value, lo, hi, boot=boot)


def pick_reference(rr: RowResult, t: Table, reference: str) -> tuple[RowResult | None, str]:
    refs = [r for r in t.rows if r.method == reference and r.model == rr.model and not r.not_run]
    same_seed = [r for r in refs if r.seed == rr.seed]
    if len(same_seed) == 1:
        return same_seed[0], ""
    if len(refs) == 1:
        return refs[0], ""
    if not refs:
        return None, f"no {reference} run of {rr.model}"
    return None, f"{len(refs)} {reference} runs of {rr.model} and none with seed {rr.seed}; not compared"


def compare(t: Table, reference: str) -> list[Versus]:
    """A Versus per method row of `t` (not base, not the reference method itself); [] when `t` has no reference row."""
    if reference in ("", "none") or not any(r.method == reference for r in t.rows):
        return []
    out = []
    for rr in t.rows:
        if rr.is_base or rr.method == reference or rr.not_run or rr.control:
            continue
        ref, why = pick_reference(rr, t, reference)
        v = Versus(rr, ref, note=why)
        if ref is not None:
            for name in COMPOSITES:
                c = difference(rr, ref, t, name)
                if c is not None and c.delta is None:
                    t.notes.append(f"{rr.label} on {rr.model} versus {ref.label}: {c.note}")
                elif c is not None:
                    v.cells[name] = c
        elif why:
            t.notes.append(f"{rr.label} on {rr.model} versus {reference}: {why}")
        out.append(v)
    return with_seed_means(out, t, reference)


def with_seed_means(rows: list[Versus], t: Table, reference: str) -> list[Versus]:
    """`rows` with a seed-mean row after the last row of each method variant compared at two or more seeds, each with
    the reference's run of that same seed. A composite enters only when every one of those seeds has its difference."""
    paired = {id(v.row): v for v in rows if v.ref is not None and v.row.seed is not None and v.ref.seed == v.row.seed}
    means = {}
    for group in seed_groups([v.row for v in rows if id(v.row) in paired]):
        members = [paired[id(r)] for r in group]
        seeds = tuple(sorted(r.seed for r in group))
        text = ", ".join(map(str, seeds))
        model = group[0].model
        m = Versus(RowResult(f"{variant_label(group[0])} mean of seeds {text}", group[0].method, model, False,
                             variant=group[0].variant),
                   RowResult(f"{reference} mean of seeds {text}", reference, model, False), seeds=seeds)
        for name in COMPOSITES:
            cells = [v.cells.get(name) for v in members]
            if all(c is not None and c.boot is not None for c in cells):
                d = float(np.mean([c.delta for c in cells]))
                boot = np.mean([c.boot for c in cells], axis=0)
                lo, hi = stats.interval(boot)
                m.cells[name] = Cell(d, d, lo, hi, boot=boot)
            elif any(c is not None for c in cells):
                t.notes.append(f"{m.row.label} on {model} versus {reference}: {name} is not compared at every seed; "
                               f"no seed mean")
        if m.cells:
            means[id(members[-1])] = m
    return [x for v in rows for x in ([v, means[id(v)]] if id(v) in means else [v])]


def attach_versus(tables: list[Table], reference: str) -> None:
    for t in tables:
        t.versus_ref = reference
        t.versus = compare(t, reference)
