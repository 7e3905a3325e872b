"""leaderboard.html: the page people look at. Works from file:// without a server and without network access.

One file with its CSS and JS inlined (sources: leaderboard/page/page.css, page.js; plain JS, no build step), plus the
sample data in leaderboard_samples/ beside it (leaderboard/samples_view.py), loaded by <script> tags when a cell is
opened. Per section (a set of comparable runs): a heading naming the base model(s), the methods and their recipes; the
evaluation settings in words (config hashes in a details element); the gain-vs-loss plot (leaderboard/page_svg.py)
with its legend; the tables (leaderboard/page_tables.py) with column-group toggles; a card per method
(leaderboard/page_cards.py); the notes.
"""

from __future__ import annotations

import html
import json
from importlib import resources
from pathlib import Path

from tqdm.auto import tqdm

from harness.io import atomic_write_text
from leaderboard import page_cards, page_svg, page_tables, samples_view
from leaderboard.build import Table
from leaderboard.render import LEGEND

TASK_NAMES = {"flores": "FLORES-200 devtest", "ifeval": "IFEval", "arc_challenge": "ARC-Challenge",
              "arc_easy": "ARC-Easy", "hellaswag": "HellaSwag", "piqa": "PIQA", "winogrande": "WinoGrande",
              "mtbench": "MT-Bench", "safety": "safety", "mgsm": "MGSM", "gsm8k": "GSM8K", "xlsum": "XL-Sum",
              "alpaca_eval": "AlpacaEval", "mmlu": "MMLU", "truthfulqa": "TruthfulQA", "wmt16": "WMT16",
              "multi30k": "Multi30k"}


def asset(name: str) -> str:
    return resources.files("leaderboard").joinpath(f"page/{name}").read_text(encoding="utf-8")


def _counts(t: Table, task: str) -> dict[str, int]:
    """Samples per subset of a task, from the base row's (else the first row's) results.json metrics."""
    runs = [r for r in t.rows if task in r.tasks]
    rr = next((r for r in runs if r.is_base), runs[0] if runs else None)
    if rr is None:
        return {}
    metrics = rr.tasks[task].entry.get("metrics", {})
    return {s: int(m["n"]) for s, m in metrics.items() if isinstance(m, dict) and isinstance(m.get("n"), int)}


def _pairs(subsets: list[str]) -> str:
    """de-en, en-de, zh-en -> "de↔en, zh→en"."""
    done, out = set(), []
    for s in subsets:
        a, _, b = s.partition("-")
        if s in done or not b:
            out += [] if s in done else [s]
            continue
        back = f"{b}-{a}"
        if back in subsets:
            done |= {s, back}
            out.append(f"{a}↔{b}")
        else:
            out.append(f"{a}→{b}")
    return ", ".join(out)


def settings_words(t: Table) -> str:
    """The evaluation settings in words: "FLORES-200 devtest de↔en, zh↔en, 200 lines per direction; IFEval 541; …"."""
    tasks = sorted({task for r in t.rows for task in r.tasks}, key=lambda x: (x != "flores", x))
    parts = []
    for task in tasks:
        name = TASK_NAMES.get(task, task)
        n = _counts(t, task)
        if not n:
            parts.append(name)
        elif set(n) == {"en"}:
            parts.append(f"{name} {n['en']}")
        elif all("-" in s for s in n) and len(set(n.values())) == 1:
            parts.append(f"{name} {_pairs(list(n))}, {next(iter(n.values()))} lines per direction")
        else:
            parts.append(f"{name} " + ", ".join(f"{s} {k}" for s, k in n.items()))
    return "; ".join(parts)


def heading(t: Table) -> str:
    models = sorted({r.model for r in t.rows})
    methods = list(dict.fromkeys(r.method for r in t.rows if not r.is_base))
    recipes = sorted({page_cards.recipe(r).get("recipe", "") for r in t.rows if not r.is_base and not r.not_run} - {""})
    return (f"{', '.join(models)}: base and {len(methods)} method{'s' * (len(methods) != 1)}"
            + (f", recipe{'s' * (len(recipes) > 1)} {', '.join(recipes)}" if recipes else ""))


def row_ids(t: Table, sec: int) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for r in t.rows:
        base = f"s{sec}-{samples_view.slug(r.label)}-{samples_view.slug(r.model)}"
        seen[base] = seen.get(base, 0) + 1
        out.append(base if seen[base] == 1 else f"{base}-{seen[base]}")
    return out


def meta(t: Table, sec: int, w: samples_view.Written | None) -> dict:
    """What the page script needs to open a cell's samples: per row its files, per column its field and subsets."""
    rows = []
    for k, r in enumerate(t.rows):
        base = next((j for j, b in enumerate(t.rows) if b.is_base and b.model == r.model), None)
        files = {task: w.row_files[(k, task)] for task in r.tasks if w and (k, task) in w.row_files}
        fields = {c.label: w.fields[(k, c.label)] for c in t.columns if w and (k, c.label) in w.fields}
        rows.append({"label": r.label, "model": r.model, "base": base, "files": files, "fields": fields})
    cols = []
    for c in t.columns:
        tr = next((r.tasks[c.task] for r in t.rows if c.task in r.tasks), None)
        pivot = str(tr.entry.get("config", {}).get("options", {}).get("pivot", "en")) if tr else "en"
        subsets = [s for g in c.groups(tr.settings["selected"], pivot) for s in g] if tr else []
        cols.append({"label": c.label, "task": c.task, "task_name": TASK_NAMES.get(c.task, c.task), "kind": c.kind,
                     "higher": c.higher_is_better if c.has_direction else None,
                     "subsets": list(dict.fromkeys(subsets))})
    return {"rows": rows, "cols": cols, "items": dict(w.item_files) if w else {}}


def section_html(t: Table, sec: int, out_dir: Path | None, w: samples_view.Written | None) -> str:
    ids = row_ids(t, sec)
    multi = len({r.model for r in t.rows}) > 1
    title, _, differs = t.title.partition(" (")
    hashes = "".join(f"<li>{html.escape(s)}</li>" for s in t.settings.split("; "))
    groups = [g for g in page_tables.GROUPS if g in set(page_tables.groups_of(t)) | {"composite"}]
    toggles = "".join(f"<label><input type='checkbox' checked data-group='{page_tables.gcls(g)}'> {html.escape(g)}"
                      f"</label>" for g in groups)
    notes = list(dict.fromkeys(t.notes))
    parts = [f"<section class='board' id='section-{sec}' aria-labelledby='h-{sec}'>",
             f"<h2 id='h-{sec}'>{html.escape(heading(t))}</h2>",
             f"<p class='settings'><b>Evaluated on</b> {html.escape(settings_words(t))}.</p>",
             f"<p class='differs'>{html.escape(differs.rstrip(')'))}.</p>" if differs else "",
             (f"<details class='hashes'><summary>{html.escape(title)}: task settings and config hashes</summary>"
             f"<ul>{hashes}</ul></details>"),
             "<h3>Translation gain versus general-ability loss</h3><div class='plotbox'>",
             page_svg.svg(t, sec, ids), "<div>", page_svg.legend(t, ids), page_svg.unplotted(t), "</div>",
             ("<p class='plotnote'>Bars: 95% paired-bootstrap intervals. A method trained with several seeds is one "
             "point (the mean of its seeds) with an open marker per seed. ◆ marks points on the Pareto frontier "
             "(dashed). Hover or focus a point for its values; click it (or press Enter) to highlight its rows."
             "</p></div><div class='tip' role='status' aria-live='polite' hidden></div>"),
             (f"<h3>Δ versus base</h3><fieldset class='toggles' data-sec='{sec}'><legend>Column groups</legend>"
             f"{toggles}</fieldset>"),
             ("<p class='hint'>Click a header to sort; click any number to see the samples behind it, next to the "
             "base model's outputs on the same items.</p>"),
             page_tables.delta_table(t, sec, ids, multi), "<h3>Scores</h3>",
             page_tables.scores_table(t, sec, ids, multi),
             page_tables.versus_table(t, sec), "<h3>Methods</h3>",
             page_cards.cards(t, out_dir or Path("."), ids)]
    if notes:
        parts.append(f"<details class='notes'><summary>Notes ({len(notes)}): seed spread, sources of values, rows "
                     f"without a value</summary><ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in notes)
                     + "</ul></details>")
    parts.append(f"<script type='application/json' class='lb-meta' data-sec='{sec}'>"
                 + json.dumps(meta(t, sec, w), ensure_ascii=False, sort_keys=True).replace("</", "<\\/") + "</script>")
    parts.append("</section>")
    return "\n".join(parts)


def html_page(tables: list[Table], n_boot: int, seed: int, out_dir: Path | None = None,
              written: list[samples_view.Written] | None = None) -> str:
    """The page's HTML (sample files, when written, are named in `written`, one per table)."""
    body = "\n".join(section_html(t, i + 1, out_dir, written[i] if written else None) for i, t in enumerate(tables))
    toc = "".join(f"<li><a href='#section-{i + 1}'>{html.escape(heading(t))}</a></li>" for i, t in enumerate(tables))
    return ("<!doctype html><html lang='en'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'><link rel='icon' href='data:,'>"
            "<title>mt-harness leaderboard</title>"
            f"<style>{asset('page.css')}</style></head><body><header><h1>mt-harness leaderboard</h1>"
            "<p class='lede'>Translation gain versus general-ability loss of methods that teach an LLM to translate. "
            f"{html.escape(LEGEND)} Bootstrap: {n_boot} resamples, seed {seed}.</p>"
            + (f"<nav aria-label='sections'><ol>{toc}</ol></nav>" if len(tables) > 1 else "")
            + f"</header><main>{body}</main>"
            "<dialog id='samples' aria-labelledby='samples-title'><div class='dlg'></div></dialog>"
            f"<script>{asset('page.js')}</script></body></html>\n")


def write_page(tables: list[Table], n_boot: int, seed: int, path: Path) -> list[Path]:
    """Write leaderboard.html and its sample files; remove sample files of earlier builds. Returns the page path."""
    out_dir = path.parent
    total = sum(len(r.tasks) for t in tables for r in t.rows)
    written = []
    with tqdm(total=total, desc="leaderboard page samples", unit="file", dynamic_ncols=True, leave=False) as bar:
        for i, t in enumerate(tables):
            written.append(samples_view.write_section(t, i + 1, out_dir, bar))
    samples_view.prune(out_dir, [p for w in written for p in w.files])
    atomic_write_text(path, html_page(tables, n_boot, seed, out_dir, written))
    return [path]
