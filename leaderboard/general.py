"""The leaderboard's general-ability side: document-resampled drift cells and the family-weighted loss composite.

See leaderboard/build.py (module docstring) for the definitions and README "Leaderboard" for why families.
"""

from __future__ import annotations

import numpy as np

from harness.io import read_json
from leaderboard import stats
from leaderboard.build import Cell, Column, Evaluator, grouped_mean, column_groups
from leaderboard.collect import Row, TaskRun


def _drift_sums(tr: TaskRun, ids: list[str]) -> tuple[np.ndarray, np.ndarray] | None:
    """Per-document (Σ NLL eval − Σ NLL base, answer tokens) from <run>/<task>/drift.json, or None without them."""
    path = tr.run_dir / tr.task / "drift.json"
    per = read_json(path).get("per_id") if path.exists() else None
    if not per or any(i not in per for i in ids):
        return None
    return (np.array([per[i][0] - per[i][1] for i in ids], dtype=float),
            np.array([per[i][2] for i in ids], dtype=float))


def drift_cell(ev: Evaluator, col: Column, row: Row, base: Row | None) -> Cell | None:
    """Drift = Σ(NLL eval − NLL base) / Σ tokens over the documents (harness/metrics/drift.py), resampled by document with
    the task's shared resamples; Δ versus the base row (whose drift is 0 by construction)."""
    tr = row.tasks[col.task]
    btr = base.tasks.get(col.task) if base is not None and base is not row else None
    points, bpoints, boots, bboots = {}, {}, {}, {}
    groups = column_groups(col, tr)
    for s in dict.fromkeys(x for g in groups for x in g):
        ids = ev.subset_ids(tr, s)
        sums = _drift_sums(tr, ids)
        if sums is None or not ids:
            return None
        counts = ev.counts(col.task, s, len(ids))
        d, n = sums
        points[s] = float(d.sum() / n.sum())
        boots[s] = (counts @ d) / np.maximum(counts @ n, 1.0)
        if btr is not None:
            if ev.subset_ids(btr, s) != ids:
                return Cell(note=f"samples of {s} differ from base; not paired")
            bsums = _drift_sums(btr, ids)
            bd, bn = bsums if bsums is not None else (np.zeros(len(ids)), np.ones(len(ids)))  # base: drift 0
            bpoints[s] = float(bd.sum() / bn.sum())
            bboots[s] = (counts @ bd) / np.maximum(counts @ bn, 1.0)
    if not groups:
        return None
    out = Cell(float(grouped_mean(points, groups)))
    if btr is not None:
        out.delta = out.value - float(grouped_mean(bpoints, groups))
        out.boot = grouped_mean(boots, groups) - grouped_mean(bboots, groups)
        out.lo, out.hi = stats.interval(out.boot)
    return out


def family_composite(cells: dict[str, Cell], cols: list[Column], sign: float) -> Cell:
    """General-ability loss: the columns of this row that have a Δ and an interval, averaged within each family,
    then the families averaged with equal weight (so seven flat multiple-choice tasks count once, like IFEval).
    The bootstrap distribution is built the same way from the columns' resamples."""
    fams: dict[str, list[tuple[float, np.ndarray]]] = {}
    for c in cols:
        x = cells.get(c.label)
        if x is None or x.delta is None or x.boot is None:
            continue
        s = (1 if c.higher_is_better else -1) * sign * 100 / c.scale
        fams.setdefault(c.family or c.label, []).append((s * x.delta, s * x.boot))
    if not fams:
        return Cell(note="no general-ability column with an interval")
    value = float(np.mean([np.mean([p for p, _ in v]) for v in fams.values()]))
    boot = np.mean([np.mean([b for _, b in v], axis=0) for v in fams.values()], axis=0)
    lo, hi = stats.interval(boot)
    used = "; ".join(f"{f}: {len(v)}" for f, v in fams.items())
    return Cell(value, value, lo, hi, note=f"families (columns): {used}", boot=boot)
