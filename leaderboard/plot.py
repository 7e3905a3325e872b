"""pareto.png: translation gain versus general-ability loss, one point per method × model, frontier drawn.

A method variant trained with several seeds is one point, the mean of its seeds' composites, with the 95% interval of
that mean per bootstrap resample (every row draws the same resamples); its seeds are drawn as small open markers of
the same colour, so the seed spread is visible next to the interval. The frontier is over these points, so it never
runs between two seeds of one method.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from leaderboard import stats
from leaderboard.build import Table, seed_groups, variant_label
from leaderboard.cells import Cell

GAIN, LOSS = "translation gain", "general-ability loss"


def frontier(points: list[tuple[float, float]]) -> list[int]:
    """Indices of points no other point beats: lower or equal loss and higher or equal gain, one strictly."""
    keep = []
    for i, (li, gi) in enumerate(points):
        if not any((lj <= li and gj >= gi and (lj < li or gj > gi)) for j, (lj, gj) in enumerate(points) if j != i):
            keep.append(i)
    return sorted(keep, key=lambda i: points[i][0])


def near_before(points: list[tuple[float, float]], i: int, frac: float = 0.05) -> list[int]:
    """Earlier points within `frac` of the points' spread of point i on both axes (their labels would collide)."""
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    sx, sy = (max(xs) - min(xs)) or 1.0, (max(ys) - min(ys)) or 1.0
    x, y = points[i]
    return [j for j in range(i) if abs(points[j][0] - x) < frac * sx and abs(points[j][1] - y) < frac * sy]


@dataclass
class Point:
    label: str
    loss: Cell
    gain: Cell
    seeds: list[tuple[float, float]] = field(default_factory=list)  # (loss, gain) of each seed of a seed mean
    model: str = ""

    def err(self, c: Cell) -> tuple[float, float]:
        return (c.value - c.lo, c.hi - c.value) if c.lo is not None else (0.0, 0.0)


def _mean(cells: list[Cell]) -> Cell:
    value = float(np.mean([c.value for c in cells]))
    if any(c.boot is None for c in cells):
        return Cell(value, value)
    boot = np.mean([c.boot for c in cells], axis=0)
    lo, hi = stats.interval(boot)
    return Cell(value, value, lo, hi, boot=boot)


def drawn_rows(table: Table) -> list:
    """The rows the plot shows: method runs with both composites (not controls, not "not run" rows), and each base
    row that is the origin of its model's methods (not a partner model scored alone)."""
    drawn = [r for r in table.rows if not r.not_run and not r.control and all(
        name in r.composites and r.composites[name].value is not None for name in (GAIN, LOSS))]
    methods_of = {r.model for r in drawn if not r.is_base}
    return [r for r in drawn if not r.is_base or r.model in methods_of]


def points(table: Table) -> list[Point]:
    """One point per drawn row; the seeds of one method variant (build.seed_groups) collapse into their mean,
    placed where the first of them is."""
    drawn = drawn_rows(table)
    suffix = (lambda r: "") if len({r.model for r in drawn}) <= 1 else (lambda r: f" ({r.model})")
    groups = {id(g[0]): g for g in seed_groups(drawn)}
    in_group = {id(r) for g in groups.values() for r in g}
    out = []
    for r in drawn:
        if id(r) not in in_group:
            out.append(Point(r.label + suffix(r), r.composites[LOSS], r.composites[GAIN], model=r.model))
        elif id(r) in groups:
            g = groups[id(r)]
            seeds = ", ".join(str(m.seed) for m in sorted(g, key=lambda m: m.seed))
            out.append(Point(f"{variant_label(r)} (mean of seeds {seeds}){suffix(r)}",
                             _mean([m.composites[LOSS] for m in g]), _mean([m.composites[GAIN] for m in g]),
                             [(m.composites[LOSS].value, m.composites[GAIN].value) for m in g], r.model))
    return out


def pareto_png(table: Table, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9.5, 5), dpi=120)
    got = points(table)
    models = sorted({p.model for p in got} or {r.model for r in table.rows})
    pts = [(p.loss.value, p.gain.value) for p in got]
    if pts:
        # points carry a number (stacked where points coincide) and the legend, outside the axes, names them:
        # method labels next to the points collide as soon as several methods land close together
        for i, p in enumerate(got):
            (x, y), ex, ey = pts[i], p.err(p.loss), p.err(p.gain)
            bar = ax.errorbar([x], [y], xerr=[[ex[0]], [ex[1]]], yerr=[[ey[0]], [ey[1]]], fmt="o", capsize=3,
                              label=f"{i + 1}  {p.label}")
            if p.seeds:
                ax.scatter(*zip(*p.seeds), s=14, facecolors="none", edgecolors=bar[0].get_color(), linewidths=0.8)
            k = len(near_before(pts, i))
            ax.annotate(str(i + 1), (x, y), textcoords="offset points", xytext=(5, 4 + 10 * k), fontsize=8)
        front = frontier(pts)
        ax.plot([pts[i][0] for i in front], [pts[i][1] for i in front], "--", color="gray", label="Pareto frontier")
        ax.axhline(0, color="lightgray", lw=0.8)
        ax.axvline(0, color="lightgray", lw=0.8)
        ax.legend(loc="center left", bbox_to_anchor=(1.02, 0.5), fontsize=8, frameon=False)
        ax.margins(x=0.2, y=0.15)
    else:
        missing = LOSS if not any(LOSS in r.composites for r in table.rows) else GAIN
        ax.text(0.5, 0.5, f"No {missing} yet:\nthe results hold no columns for it.", ha="center", va="center",
                transform=ax.transAxes)
    ax.set_xlabel(f"{LOSS} (pp of full scale, lower is better)")
    ax.set_ylabel(f"{GAIN} (pp of full scale, higher is better)")
    ax.set_title(f"Translation gain vs general-ability loss — {', '.join(models)}, {table.title.split(' (')[0]}\n"
                 "bars: 95% paired-bootstrap intervals" + ("; open markers: single seeds of a seed mean"
                                                           if any(p.seeds for p in got) else ""), fontsize=10)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
