"""pareto.png: translation gain versus general-ability loss, one point per method × model, frontier drawn."""

from __future__ import annotations

from pathlib import Path

from leaderboard.build import Table

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


def pareto_png(table: Table, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9.5, 5), dpi=120)
    pts, labels, errs = [], [], []
    models = sorted({r.model for r in table.rows})
    for r in table.rows:
        g, lo = r.composites.get(GAIN), r.composites.get(LOSS)
        if r.not_run or g is None or lo is None or g.value is None or lo.value is None:
            continue
        pts.append((lo.value, g.value))
        labels.append(r.label if len(models) == 1 else f"{r.label} ({r.model})")
        errs.append(((lo.value - lo.lo, lo.hi - lo.value) if lo.lo is not None else (0, 0),
                     (g.value - g.lo, g.hi - g.value) if g.lo is not None else (0, 0)))
    if pts:
        # points carry a number (stacked where points coincide) and the legend, outside the axes, names them:
        # method labels next to the points collide as soon as several methods land close together
        for i, ((x, y), lab, (ex, ey)) in enumerate(zip(pts, labels, errs)):
            ax.errorbar([x], [y], xerr=[[ex[0]], [ex[1]]], yerr=[[ey[0]], [ey[1]]], fmt="o", capsize=3,
                        label=f"{i + 1}  {lab}")
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
                 "bars: 95% paired-bootstrap intervals", fontsize=10)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
