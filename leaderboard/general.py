"""The leaderboard's general-ability side: the family-weighted loss composite (drift cells: leaderboard/cells.py).

See leaderboard/build.py (module docstring) for the definitions and README "Leaderboard" for why families.
"""

from __future__ import annotations

import numpy as np

from leaderboard import stats
from leaderboard.cells import Cell
from leaderboard.columns import Column


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
