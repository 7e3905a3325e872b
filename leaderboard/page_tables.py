"""The page's tables: Δ versus base, scores, versus the reference method; every number a button to its samples.

Columns carry a group (composite, translation, general ability, safety, drift, other) that the page can hide; the
header sorts (a button per column, aria-sort kept); † and the interval sit under each Δ, and a "not significant"
cell is marked by the dagger and its title, not by colour alone. "Not run" rows say why in the row; a row with a
`stale` attribute (set by the staleness check of another issue) gets a flag with its explanation.
"""

from __future__ import annotations

import html

from leaderboard.build import RowResult, Table
from leaderboard.cells import Cell
from leaderboard.columns import COMPOSITES, Column
from leaderboard.render import DAGGER, versus_lines

GROUPS = ("composite", "translation", "general ability", "safety", "drift", "other")
NS = "interval contains 0: not significant"


def _fmt(x: float | None, col: Column | None = None, signed: bool = False) -> str:
    """As in the Markdown table (leaderboard/render.py): 3 decimals for rates, 2 for percent-scale metrics."""
    if x is None:
        return ""
    digits = 3 if col is not None and col.scale <= 1 else 2
    return f"{x:+.{digits}f}" if signed else f"{x:.{digits}f}"


def column_group(col: Column, translation_tasks: set[str]) -> str:
    if col.kind == "drift":
        return "drift"
    if col.family == "safety":
        return "safety"
    if col.task in translation_tasks:
        return "translation"
    return "general ability" if col.role == "general" else "other"


def groups_of(t: Table) -> list[str]:
    """The group of each of t's columns (composites not included)."""
    tt = {c.task for c in t.columns if c.role == "translation"}
    return [column_group(c, tt) for c in t.columns]


def gcls(group: str) -> str:
    return "g-" + group.replace(" ", "-")


def arrow(col: Column) -> str:
    """The header's direction mark; "±" (no better side) for a column with direction "none"."""
    if not col.has_direction:
        return "±"
    return "↑" if col.higher_is_better else "↓"


def delta_html(c: Cell | None, col: Column | None) -> tuple[str, float | None]:
    """(inner HTML, sort value) of a Δ cell."""
    if c is None:
        return "", None
    if c.note == "reference":
        return "<span class='d'>0</span><span class='ci'>reference</span>", 0.0
    if c.delta is None:
        return ("<span class='d'>—</span>", None) if c.value is not None else ("", None)
    text = f"<span class='d'>{_fmt(c.delta, col, True)}</span>"
    if c.lo is not None:
        dag = f"<abbr class='dag' title='{NS}'>{DAGGER}</abbr>" if c.crosses_zero else ""
        text += f"<span class='ci'>[{_fmt(c.lo, col, True)}, {_fmt(c.hi, col, True)}]{dag}</span>"
    elif c.note:
        text += f"<span class='ci'>{html.escape(c.note)}</span>"
    return text, c.delta


def starts(groups: list[str]) -> list[bool]:
    """Whether each column opens a new group (drawn with a stronger left border)."""
    return [k == 0 or g != groups[k - 1] for k, g in enumerate(groups)]


def _th(label: str, group: str, sub: str = "", sortable: bool = True, sticky: bool = False, start: bool = False) -> str:
    cls = f"{gcls(group)}{' stick' if sticky else ''}{' gs' if start else ''}"
    inner = html.escape(label) + (f"<span class='sub'>{html.escape(sub)}</span>" if sub else "")
    body = f"<button type='button' class='sort'>{inner}</button>" if sortable else inner
    return f"<th scope='col' class='{cls}' aria-sort='none'>{body}</th>"


def _head(groups: list[str], labels: list[tuple[str, str]], lead: list[str]) -> str:
    """Two header rows: the column groups, then the column labels (the first `lead` columns are not grouped)."""
    spans: list[list] = []
    for g in groups:
        if spans and spans[-1][0] == g:
            spans[-1][1] += 1
        else:
            spans.append([g, 1])
    top = "".join("<th class='stick' scope='col' aria-hidden='true'></th>" if k == 0 else
                  "<th scope='col' aria-hidden='true'></th>" for k in range(len(lead)))
    top += "".join(f"<th scope='colgroup' colspan='{n}' class='grp gs {gcls(g)}'>{html.escape(g)}</th>"
                   for g, n in spans)
    cols = "".join(_th(x, "lead", sticky=k == 0) for k, x in enumerate(lead))
    cols += "".join(_th(a, g, b, start=st) for (a, b), g, st in zip(labels, groups, starts(groups)))
    return f"<thead><tr class='gr'>{top}</tr><tr class='cols'>{cols}</tr></thead>"


def row_head(rr: RowResult, rid: str) -> str:
    flags = ""
    stale = getattr(rr, "stale", "")
    if stale:
        flags += f"<span class='flag stale' title='{html.escape(str(stale), quote=True)}'>stale</span>"
    return f"<th scope='row' class='stick'>{html.escape(rr.label)}{flags}</th>"


def _stale_note(rr: RowResult, n: int) -> str:
    stale = getattr(rr, "stale", "")
    return (f"<tr class='stale-note'><td></td><td colspan='{n}'>stale: {html.escape(str(stale))}</td></tr>"
            if stale else "")


def _cell_td(group: str, inner: str, v: float | None, k: int, j: int, ns: bool, sec: int, clickable: bool,
             start: bool = False) -> str:
    attr = f" data-v='{v}'" if v is not None else ""
    cls = gcls(group) + (" ns" if ns else "") + (" gs" if start else "")
    if clickable and inner:
        inner = f"<button type='button' class='cell' data-s='{sec}' data-r='{k}' data-c='{j}'>{inner}</button>"
    return f"<td class='{cls}'{attr}>{inner}</td>"


def delta_table(t: Table, sec: int, row_ids: list[str], multi_model: bool) -> str:
    comps = [n for n in COMPOSITES if any(n in r.composites for r in t.rows)]
    groups = ["composite"] * len(comps) + groups_of(t)
    labels = [(n, "↑" if n.startswith("translation") else "↓") for n in comps]
    labels += [(c.label, arrow(c)) for c in t.columns]
    lead = ["method"] + (["model"] if multi_model else [])
    out = [(f"<div class='scroll' tabindex='0' role='region' aria-label='Δ versus base, section {sec}'>"
           f"<table class='lb delta' id='delta-{sec}'>"), _head(groups, labels, lead), "<tbody>"]
    n, st = len(groups), starts(groups)
    for k, rr in enumerate(t.rows):
        tds = [row_head(rr, row_ids[k])] + ([f"<td class='lead'>{html.escape(rr.model)}</td>"] if multi_model else [])
        if rr.not_run:
            tds.append(f'<td class="nr" colspan="{n}">{html.escape("not run: " + rr.not_run)}</td>')
        else:
            for name in comps:
                inner, v = delta_html(rr.composites.get(name), None)
                c = rr.composites.get(name)
                tds.append(_cell_td("composite", inner, v, k, -1, bool(c and c.crosses_zero), sec, False,
                                    name == comps[0]))
            for j, col in enumerate(t.columns):
                c = rr.cells.get(col.label)
                inner, v = delta_html(c, col)
                g = len(comps) + j
                tds.append(_cell_td(groups[g], inner, v, k, j, bool(c and c.crosses_zero), sec, True, st[g]))
        out.append(f"<tr id='{row_ids[k]}'{' class=notrun' if rr.not_run else ''}>" + "".join(tds) + "</tr>"
                   + _stale_note(rr, n))
    out.append("</tbody></table></div>")
    return "".join(out)


def scores_table(t: Table, sec: int, row_ids: list[str], multi_model: bool) -> str:
    groups = groups_of(t)
    st = starts(groups)
    lead = ["method"] + (["model"] if multi_model else [])
    out = [(f"<div class='scroll' tabindex='0' role='region' aria-label='Scores, section {sec}'>"
           f"<table class='lb scores' id='scores-{sec}'>"),
           _head(groups, [(c.label, arrow(c)) for c in t.columns], lead),
           "<tbody>"]
    for k, rr in enumerate(t.rows):
        tds = [row_head(rr, row_ids[k])] + ([f"<td class='lead'>{html.escape(rr.model)}</td>"] if multi_model else [])
        if rr.not_run:
            tds.append(f'<td class="nr" colspan="{len(groups)}">{html.escape("not run: " + rr.not_run)}</td>')
        else:
            for j, col in enumerate(t.columns):
                c = rr.cells.get(col.label)
                inner = f"<span class='d'>{_fmt(c.value, col)}</span>" if c and c.value is not None else ""
                tds.append(_cell_td(groups[j], inner, c.value if c else None, k, j, False, sec, True, st[j]))
        out.append("<tr>" + "".join(tds) + "</tr>")
    out.append("</tbody></table></div>")
    return "".join(out)


def versus_table(t: Table, sec: int) -> str:
    intro, head, vrows = versus_lines(t)
    if not vrows:
        return ""
    out = [f"<h3>Versus {html.escape(t.versus_ref)}</h3><p class='intro'>{html.escape(intro)}</p>",
           f"<div class='scroll' tabindex='0' role='region' aria-label='versus {html.escape(t.versus_ref)}'>"
           f"<table class='lb versus' id='versus-{sec}'><thead><tr class='cols'>"
           + "".join(_th(h, "lead", sticky=k == 0) for k, h in enumerate(head)) + "</tr></thead><tbody>"]
    for a, b, c, cells in vrows:
        tds = [f"<th scope='row' class='stick'>{html.escape(a)}</th>", f"<td class='lead'>{html.escape(b)}</td>",
               f"<td class='lead'>{html.escape(c)}</td>"]
        for text, v, dim in cells:
            d, _, ci = text.partition(" ")
            inner = f"<span class='d'>{html.escape(d)}</span>" + (
                f"<span class='ci'>{html.escape(ci.replace(DAGGER, ''))}"
                + (f"<abbr class='dag' title='{NS}'>{DAGGER}</abbr>" if DAGGER in ci else "") + "</span>" if ci else "")
            tds.append(f"<td class='{'ns' if dim else ''}'{'' if v is None else f' data-v={v!r}'}>{inner}</td>")
        out.append("<tr>" + "".join(tds) + "</tr>")
    out.append("</tbody></table></div>")
    return "".join(out)
