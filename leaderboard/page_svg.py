"""The page's gain-vs-loss plot as inline SVG, from the same points as pareto.png (leaderboard/plot.py).

One point per method variant (seeds of one variant: their mean, with its interval, and an open marker per seed),
95% intervals as error bars on both axes, the Pareto frontier as a dashed line. Every point is a focusable element
with an aria-label naming the method and its values, numbered like the legend (meaning never carried by colour
alone); the page's script shows a tooltip on hover/focus and highlights the point's table rows on click/Enter.
"""

from __future__ import annotations

import html
import math

from leaderboard.build import Table, seed_groups
from leaderboard.plot import GAIN, LOSS, Point, drawn_rows, frontier, points

W, H = 720, 380
L, R, T, B = 64, 16, 16, 52  # margins
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf")


def nice_ticks(lo: float, hi: float, n: int = 6) -> list[float]:
    span = (hi - lo) or 1.0
    raw = span / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(s * mag for s in (1, 2, 2.5, 5, 10) if s * mag >= raw)
    start = math.ceil(lo / step) * step
    return [round(start + k * step, 10) for k in range(int((hi - start) / step) + 1)]


def _fmt(x: float | None) -> str:
    return "" if x is None else f"{x:+.2f}"


def interval_text(c) -> str:
    return _fmt(c.value) + (f" [{_fmt(c.lo)}, {_fmt(c.hi)}]" if c.lo is not None else "")


def point_rows(table: Table) -> list[list[int]]:
    """For each plotted point (same order as plot.points), the indices of the table rows it stands for."""
    drawn = drawn_rows(table)
    groups = {id(g[0]): g for g in seed_groups(drawn)}
    in_group = {id(r) for g in groups.values() for r in g}
    index = {id(r): k for k, r in enumerate(table.rows)}
    out: list[list[int]] = []
    for r in drawn:
        if id(r) not in in_group:
            out.append([index[id(r)]])
        elif id(r) in groups:
            out.append([index[id(m)] for m in groups[id(r)]])
    return out


def svg(table: Table, sec: int, row_ids: list[str]) -> str:
    """The plot of `table` (section number `sec`); `row_ids`: the HTML id of each table row."""
    pts = points(table)
    members = point_rows(table)
    if not pts:
        return "<p class='empty'>No plot: the rows have no translation gain and general-ability loss to place.</p>"
    xs = [v for p in pts for v in (p.loss.value, p.loss.lo, p.loss.hi, *(s[0] for s in p.seeds)) if v is not None]
    ys = [v for p in pts for v in (p.gain.value, p.gain.lo, p.gain.hi, *(s[1] for s in p.seeds)) if v is not None]
    x0, x1 = min(xs + [0.0]), max(xs + [0.0])
    y0, y1 = min(ys + [0.0]), max(ys + [0.0])
    padx, pady = (x1 - x0) * 0.06 or 1, (y1 - y0) * 0.08 or 1
    x0, x1, y0, y1 = x0 - padx, x1 + padx, y0 - pady, y1 + pady

    def sx(x: float) -> float:
        return round(L + (x - x0) / (x1 - x0) * (W - L - R), 1)

    def sy(y: float) -> float:
        return round(T + (y1 - y) / (y1 - y0) * (H - T - B), 1)

    out = [f"<svg class='plot' viewBox='0 0 {W} {H}' role='group' aria-labelledby='plot-title-{sec}'>",
           (f"<title id='plot-title-{sec}'>Translation gain versus general-ability loss, one point per method "
           f"variant</title>"), f"<rect x='{L}' y='{T}' width='{W - L - R}' height='{H - T - B}' class='frame'/>"]
    for x in nice_ticks(x0, x1):
        out.append(f"<line x1='{sx(x)}' x2='{sx(x)}' y1='{T}' y2='{H - B}' class='grid{' zero' if x == 0 else ''}'/>"
                   f"<text x='{sx(x)}' y='{H - B + 16}' class='tick' text-anchor='middle'>{x:g}</text>")
    for y in nice_ticks(y0, y1):
        out.append(f"<line x1='{L}' x2='{W - R}' y1='{sy(y)}' y2='{sy(y)}' class='grid{' zero' if y == 0 else ''}'/>"
                   f"<text x='{L - 6}' y='{sy(y) + 4}' class='tick' text-anchor='end'>{y:g}</text>")
    out.append(f"<text x='{(L + W - R) / 2}' y='{H - 12}' class='axis' text-anchor='middle'>{LOSS} (pp of full "
               f"scale) → worse</text><text transform='translate(16 {(T + H - B) / 2}) rotate(-90)' class='axis' "
               f"text-anchor='middle'>{GAIN} (pp of full scale) → better</text>")
    xy = [(p.loss.value, p.gain.value) for p in pts]
    front = frontier(xy)
    if len(front) > 1:
        out.append("<polyline class='frontier' points='" + " ".join(f"{sx(xy[i][0])},{sy(xy[i][1])}" for i in front)
                   + "'><title>Pareto frontier</title></polyline>")
    placed: list[tuple[float, float]] = []
    for k, p in enumerate(pts):
        out.append(_point(k, p, k in front, [row_ids[i] for i in members[k]], sx, sy, placed))
    out.append("</svg>")
    return "\n".join(out)


def _point(k: int, p: Point, on_front: bool, rows: list[str], sx, sy, placed: list[tuple[float, float]]) -> str:
    colour = PALETTE[k % len(PALETTE)]
    x, y = sx(p.loss.value), sy(p.gain.value)
    label = (f"{k + 1}. {p.label}: {GAIN} {interval_text(p.gain)}, {LOSS} {interval_text(p.loss)}"
             + ("; on the Pareto frontier" if on_front else "")
             + (f"; seeds at {', '.join(f'({a:+.2f}, {b:+.2f})' for a, b in p.seeds)} (loss, gain)" if p.seeds else ""))
    parts = [(f"<g class='pt' tabindex='0' role='button' style='--c:{colour}' data-rows='{' '.join(rows)}' "
             f"data-label='{html.escape(p.label, quote=True)}' data-gain='{html.escape(interval_text(p.gain))}' "
             f"data-loss='{html.escape(interval_text(p.loss))}' data-front='{int(on_front)}' "
             f"aria-label='{html.escape(label, quote=True)}'>")]
    if p.loss.lo is not None:
        parts.append(f"<line class='err' x1='{sx(p.loss.lo)}' x2='{sx(p.loss.hi)}' y1='{y}' y2='{y}'/>")
    if p.gain.lo is not None:
        parts.append(f"<line class='err' x1='{x}' x2='{x}' y1='{sy(p.gain.lo)}' y2='{sy(p.gain.hi)}'/>")
    parts += [f"<circle class='seed' cx='{sx(a)}' cy='{sy(b)}' r='3'/>" for a, b in p.seeds]
    if on_front:
        parts.append(f"<circle class='ring' cx='{x}' cy='{y}' r='9'/>")
    parts.append(f"<circle class='dot' cx='{x}' cy='{y}' r='5.5'/>")
    dy = -9 - 12 * sum(1 for (a, b) in placed if abs(a - x) < 22 and abs(b - y) < 14)  # stack colliding numbers
    placed.append((x, y))
    parts.append(f"<text class='num' x='{x + 8}' y='{y + dy}'>{k + 1}</text></g>")
    return "".join(parts)


def legend(table: Table, row_ids: list[str]) -> str:
    """The plot's legend as an ordered list (numbers match the points), each entry a button like its point."""
    pts, members = points(table), point_rows(table)
    front = set(frontier([(p.loss.value, p.gain.value) for p in pts]))
    items = []
    for k, p in enumerate(pts):
        rows = " ".join(row_ids[i] for i in members[k])
        items.append(f"<li><button type='button' class='leg' data-rows='{rows}' style='--c:{PALETTE[k % 10]}'>"
                     f"<span class='sw' aria-hidden='true'></span><b>{k + 1}</b> {html.escape(p.label)}"
                     f"{' ◆ frontier' if k in front else ''}</button><span class='vals'>gain "
                     f"{html.escape(interval_text(p.gain))}, loss {html.escape(interval_text(p.loss))}</span></li>")
    return "<ol class='legend'>" + "".join(items) + "</ol>"


def unplotted(table: Table) -> str:
    """A line naming the rows that are not on the plot, and which composite each lacks."""
    out = []
    for r in table.rows:
        if r.not_run:
            out.append(f"{r.label} (not run)")
            continue
        lacks = [n for n in (GAIN, LOSS) if r.composites.get(n) is None or r.composites[n].value is None]
        if lacks:
            out.append(f"{r.label} (no {' and no '.join(lacks)})")
    return f"<p class='plotnote unplotted'>Not on the plot: {html.escape('; '.join(out))}.</p>" if out else ""
