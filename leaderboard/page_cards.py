"""The page's method cards: what each method trains and keeps frozen, its paper, its recipe and budget, its README.

The paragraph comes from leaderboard/page/methods.json (kept short; the method's README says it in full). The recipe
and budget are read from the rows' results.json (method config, training data, artifact) and phases.json (training
time); nothing is filled in when a run does not record it. A row carrying a `mechanism` value (the mechanism check of
another issue) has it shown; none is invented.
"""

from __future__ import annotations

import html
import json
import os
import re
from importlib import resources
from pathlib import Path

from harness.rundir.phases import read_phases
from leaderboard.build import RowResult, Table

REPO = Path(__file__).resolve().parent.parent


def descriptions() -> dict[str, dict]:
    return json.loads(resources.files("leaderboard").joinpath("page/methods.json").read_text(encoding="utf-8"))


def readme_link(method: str, out_dir: Path) -> str | None:
    """Relative link from the page to methods/<m>/README.md of this repository (None when there is none)."""
    readme = REPO / "methods" / method / "README.md"
    if not readme.exists():
        return None
    return os.path.relpath(readme, out_dir.resolve()).replace(os.sep, "/")


def recipe(rr: RowResult) -> dict[str, str]:
    """Readable recipe facts of one trained row, from its results.json and phases.json."""
    tr = next(iter(rr.tasks.values()), None)
    if tr is None:
        return {}
    res, out = tr.results, {}
    m = re.search(r"--method-config\s+(\S+)", str(res.get("command", "")))
    if m:
        out["recipe"] = Path(m.group(1)).stem
    cfg = res.get("method", {}).get("config", {}) or {}
    train = cfg.get("train", {}) if isinstance(cfg.get("train"), dict) else {}
    if train.get("max_steps"):
        eff = int(train.get("batch_size", 1)) * int(train.get("grad_accum", 1))
        out["steps"] = f"{train['max_steps']} steps × batch {eff}, lr {train.get('lr', '?')}"
    data = cfg.get("data", {}) if isinstance(cfg.get("data"), dict) else {}
    td = cfg.get("training_data", {}) if isinstance(cfg.get("training_data"), dict) else {}
    if td.get("n_train"):
        src = "+".join(data.get("sources", [])) or "training"
        out["data"] = f"{td['n_train']} {src} pairs ({', '.join(data.get('pairs', []))})"
    kind = (res.get("method", {}).get("artifact") or {}).get("kind")
    if kind and kind != "none":
        out["artifact"] = kind
    secs = (read_phases(tr.run_dir).get("train") or {}).get("seconds")
    if isinstance(secs, (int, float)):
        out["train time"] = f"{secs / 60:.0f} min"
    return out


def cards(t: Table, out_dir: Path, row_ids: list[str]) -> str:
    desc = descriptions()
    methods = list(dict.fromkeys(r.method for r in t.rows))
    parts = ["<div class='cards'>"]
    for method in methods:
        rows = [(k, r) for k, r in enumerate(t.rows) if r.method == method]
        d = desc.get(method)
        parts.append(f"<article class='card' id='card-{html.escape(method)}' aria-labelledby='card-h-{method}'>"
                     f"<h4 id='card-h-{method}'>{html.escape(method)}</h4>")
        if d:
            parts.append(f"<p>{html.escape(d['summary'])}</p><dl class='facts'><dt>trains</dt><dd>"
                         f"{html.escape(d['trains'])}</dd><dt>frozen</dt><dd>{html.escape(d['frozen'])}</dd>"
                         f"<dt>paper</dt><dd>{html.escape(d['paper'])}</dd></dl>")
        else:
            parts.append("<p>No summary for this method in leaderboard/page/methods.json; see its README.</p>")
        per = {k: recipe(r) for k, r in rows if not r.not_run}
        shared = {a: b for a, b in next(iter(per.values()), {}).items()
                  if len(per) > 1 and all(f.get(a) == b for f in per.values())}
        if shared:
            parts.append("<dl class='facts'>" + "".join(f"<dt>{html.escape(a)}</dt><dd>{html.escape(b)}</dd>"
                                                        for a, b in shared.items()) + "</dl>")
        parts.append("<ul class='runs'>")
        for k, r in rows:
            facts = "; ".join(f"{a}: {html.escape(b)}" for a, b in per.get(k, {}).items() if a not in shared)
            status = (f"not run: {html.escape(r.not_run)}" if r.not_run else facts
                      or ("as above" if shared else "no training recorded"))
            mech = getattr(r, "mechanism", None)
            mech_html = (f"<div class='mech'>mechanism check: {html.escape(str(mech))}</div>"
                         if mech not in (None, "") else "")
            parts.append(f"<li><a href='#{row_ids[k]}' class='rowlink'>{html.escape(r.label)}</a>: {status}"
                         f"{mech_html}</li>")
        parts.append("</ul>")
        link = readme_link(method, out_dir)
        if link:
            parts.append(f"<p class='readme'><a href='{html.escape(link, quote=True)}'>methods/{html.escape(method)}/"
                         f"README.md</a></p>")
        parts.append("</article>")
    parts.append("</div>")
    return "".join(parts)
