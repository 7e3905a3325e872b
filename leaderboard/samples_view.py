"""The leaderboard page's sample data: what a reader sees behind a number, written as small .js files loaded on demand.

Every cell of the page leads to the samples behind it: the method's records next to the base model's on the same
items. They are written beside the page, in `leaderboard_samples/`, one file per (section, task) with what the items
share (source, references, choices, instructions, turns; taken from the base row's records) and one file per
(section, row, task) with that row's outputs, per-sample metric values and flags. Each file is a script that calls
`LB.put(name, data)`: browsers refuse fetch() from file://, but load a <script> tag, so the page works offline; a
file loads only when a cell of its task is opened.

Per-sample values are the ones the leaderboard column averages or accumulates (leaderboard/build.py): `mean` columns
the value at the column's sample path (judge verdicts when the row's column used them); `corpus` columns the
sentence-level score the task stored in `scores.<metric>` when there is one (chrF++), else the sentence score of the
column's own sacrebleu metric (rebuilt from the signature; BLEU with effective order); `drift` columns the document's
drift from drift.json.
Flags: truncated (generation stopped at max_new_tokens), off-target, empty, refusal (classifier and judge), cleaned.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from harness.io import atomic_write_text
from leaderboard.build import RowResult, Table
from leaderboard.cells import get_path, with_source
from leaderboard.columns import Column
from leaderboard.collect import TaskRun

DIR = "leaderboard_samples"
# user-turn markers of common chat templates: (start of the user turn, end of it)
_CHAT = (("<|im_start|>user\n", "<|im_end|>"), ("<start_of_turn>user\n", "<end_of_turn>"),
         ("<|start_header_id|>user<|end_header_id|>\n\n", "<|eot_id|>"), ("<|user|>\n", "<|end|>"),
         ("[INST]", "[/INST]"))


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "x"


def user_text(prompt: str) -> str:
    """The last user turn of a chat-formatted prompt (the prompt itself when no known template marks one)."""
    for start, end in _CHAT:
        if start in prompt:
            return prompt.rsplit(start, 1)[1].split(end, 1)[0].strip()
    return prompt.strip()


def template_source(text: str, template: str) -> str | None:
    """The `{source}` part of a user turn rendered from `template` (None when the template has no {source} or the
    text does not match it)."""
    if "{source}" not in template:
        return None
    pattern = "".join("(?P<source>.*?)" if p == "{source}" else ".*?" if p.startswith("{") else re.escape(p)
                      for p in re.split(r"(\{[a-z_]+\})", template))
    m = re.fullmatch(pattern, text, re.DOTALL)
    return m.group("source").strip() if m else None


def _clean(v):
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def item_of(rec: dict, template: str) -> dict:
    """What a sample shares across methods: source or question, references, choices, instructions, user turns."""
    out: dict = {"subset": rec.get("subset", "")}
    if rec.get("contexts"):
        ctx, cont = rec["contexts"], rec.get("continuations", [])
        if len(set(ctx)) > 1:  # e.g. WinoGrande: the options are in the contexts
            out["src"], out["choices"] = "", [c + (cont[0] if cont else "") for c in ctx]
        else:
            out["src"], out["choices"] = ctx[0], list(cont)
        out["gold"] = rec.get("gold")
    elif rec.get("question"):
        out["src"] = rec["question"]
    prompts = rec.get("prompts") or []
    if "src" not in out and prompts:
        turns = [user_text(p) for p in prompts]
        if len(turns) > 1:
            out["turns"] = turns
        else:
            out["src"] = template_source(turns[0], template) or turns[0]
    refs = rec.get("references") or ([rec["reference"]] if isinstance(rec.get("reference"), str) else [])
    if refs:
        out["refs"] = refs
    if rec.get("instruction_id_list"):
        out["instructions"] = rec["instruction_id_list"]
    if "harmful" in rec:
        out["harmful"] = int(bool(rec["harmful"]))
    return out


def flags(rec: dict) -> list[str]:
    out = []
    if "length" in (rec.get("finish") or []):
        out.append("truncated")
    if get_path(rec, "scores.off_target"):
        out.append("off-target")
    if rec.get("empty") or get_path(rec, "scores.empty"):
        out.append("empty")
    if rec.get("refusal") is True:
        out.append("refusal (classifier)")
    if get_path(rec, "judgment.refusal") is True:
        out.append("refusal (judge)")
    if any(rec.get("cleaning") or []):
        out.append("cleaned")
    return out


@dataclass
class Field:
    """One per-sample value of a task: `key` in the data files, shown as `label`."""

    key: str
    label: str
    columns: list[str] = field(default_factory=list)  # the table columns it stands behind


def field_key(col: Column, tr: TaskRun | None, btr: TaskRun | None) -> tuple[Column, str]:
    """(the column as used for this row, the per-sample field behind it)."""
    used = with_source(col, tr, btr)[0] if tr is not None else col
    if used.kind == "drift":
        return used, "drift_kl" if used.sample == "kl" else "drift"
    if used.kind == "corpus":
        return used, f"sent.{used.sample}"
    return used, used.sample or used.key


def _sentence_metric(tr: TaskRun, name: str):
    from leaderboard import stats

    for m in tr.entry.get("metrics", {}).values():
        if isinstance(m, dict) and name in m.get("signatures", {}):
            metric = stats.metric_from_signature(name, m["signatures"][name], m.get("metric_args", {}).get(name))
            if hasattr(metric, "effective_order"):
                metric.effective_order = True  # sentence BLEU, as sacrebleu's sentence_bleu computes it
            return metric
    return None


def _drift(tr: TaskRun, kl: bool = False) -> dict[str, float]:
    """Per-document drift (nats/token) from drift.json: signed NLL drift, or KL(base‖eval) with `kl` (documents
    written without per-document KL are left out)."""
    per = (tr.drift() or {}).get("per_id")
    if kl:
        return {i: v[3] / v[2] for i, v in (per or {}).items() if v[2] and len(v) > 3}
    return {i: (v[0] - v[1]) / v[2] for i, v in (per or {}).items() if v[2]}


def row_values(tr: TaskRun, recs: dict[str, dict], ids: list[str], cols: list[Column], btr: TaskRun | None) -> dict:
    """Per-sample values of every field behind `cols` (this row's task columns), aligned with `ids`."""
    values: dict[str, list] = {}
    for col in cols:
        used, key = field_key(col, tr, btr)
        if key in values:
            continue
        if key in ("drift", "drift_kl"):
            d = _drift(tr, key == "drift_kl")
            values[key] = [(_clean(round(d[i], 6)) if i in d else (0.0 if btr is None and d == {} else None))
                           for i in ids]
        elif used.kind == "corpus":
            name = used.sample
            metric = None
            col_vals = []
            for i in ids:
                r = recs[i]
                v = get_path(r, f"scores.{name}")
                if not isinstance(v, (int, float)):
                    metric = metric or _sentence_metric(tr, name)
                    refs = r.get("references") or [r.get("reference", "")]
                    v = metric.sentence_score(r["outputs"][0], refs).score if metric and r.get("outputs") else None
                col_vals.append(_clean(v))
            values[key] = col_vals
        else:
            vals = []
            for i in ids:
                v = get_path(recs[i], used.sample)
                vals.append(_clean(used.none if v is None else v))
            values[key] = vals
    return values


def row_record(rec: dict) -> dict:
    out: dict = {}
    if rec.get("outputs"):
        out["out"] = rec["outputs"]
    for k in ("pred", "pred_norm"):
        if k in rec:
            out[k] = rec[k]
    if rec.get("ifeval"):
        strict = rec["ifeval"].get("inst_level_strict") or []
        out["failed"] = [k for k, ok in enumerate(strict) if not ok]
    if rec.get("refusal_match"):
        out["match"] = rec["refusal_match"]
    j = rec.get("judgment")
    if isinstance(j, dict):  # the judge's verdict: its scalar fields, and each turn's score (MT-Bench)
        out["judge"] = {k: v for k, v in j.items() if isinstance(v, (str, int, float, bool))}
        if isinstance(j.get("turns"), list):
            out["judge"]["turn scores"] = ", ".join(str(t.get("score")) for t in j["turns"] if isinstance(t, dict))
    f = flags(rec)
    if f:
        out["flags"] = f
    return out


def script(name: str, data) -> str:
    return (f"LB.put({json.dumps(name)},"
            f"{json.dumps(data, ensure_ascii=False, sort_keys=True, separators=(',', ':'))});\n")


@dataclass
class Written:
    """What the page needs to link its cells: file names per (row index, task), items file per task, fields."""

    row_files: dict[tuple[int, str], str] = field(default_factory=dict)
    item_files: dict[str, str] = field(default_factory=dict)
    fields: dict[tuple[int, str], str] = field(default_factory=dict)  # (row index, column label) -> field key
    files: list[Path] = field(default_factory=list)


def write_section(t: Table, index: int, out_dir: Path, progress=None) -> Written:
    """Write the sample files of one table (section `index`, 1-based) into out_dir/leaderboard_samples."""
    w = Written()
    folder = out_dir / DIR
    by_task: dict[str, list[Column]] = {}
    for c in t.columns:
        if c.task:
            by_task.setdefault(c.task, []).append(c)
    for task, cols in by_task.items():
        runs = [(k, r) for k, r in enumerate(t.rows) if task in r.tasks]
        if not runs:
            continue
        base_rows = [r for _, r in runs if r.is_base]
        anchor = base_rows[0] if base_rows else runs[0][1]
        atr = anchor.tasks[task]
        arecs = atr.samples()
        ids = sorted(arecs, key=_natural)
        template = str(atr.entry.get("config", {}).get("prompt", {}).get("template", ""))
        name = f"s{index}-{slug(task)}-items"
        _write(folder / f"{name}.js",
               script(name, {"ids": ids, "items": [item_of(arecs[i], template) for i in ids]}), w)
        w.item_files[task] = name
        for k, rr in runs:
            tr = rr.tasks[task]
            base = _base_of(t, rr)
            btr = base.tasks.get(task) if base is not None and base is not rr else None
            recs = arecs if rr is anchor else tr.samples()
            rids = [i for i in ids if i in recs]
            name = f"s{index}-{slug(rr.label)}-{slug(rr.model)}-{slug(task)}"
            data = {"ids": rids, "recs": [row_record(recs[i]) for i in rids],
                    "values": row_values(tr, recs, rids, cols, btr)}
            _write(folder / f"{name}.js", script(name, data), w)
            w.row_files[(k, task)] = name
            for c in cols:
                w.fields[(k, c.label)] = field_key(c, tr, btr)[1]
            if progress is not None:
                progress.update()
    return w


def _base_of(t: Table, rr: RowResult) -> RowResult | None:
    return next((r for r in t.rows if r.is_base and r.model == rr.model), None)


def _natural(sample_id: str) -> list:
    return [int(x) if k % 2 else x for k, x in enumerate(re.split(r"(\d+)", sample_id))]


def _write(path: Path, text: str, w: Written) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        atomic_write_text(path, text)
    w.files.append(path)


def prune(out_dir: Path, keep: list[Path]) -> None:
    """Remove sample files of an earlier build that this build did not write (only .js files in our folder)."""
    folder = out_dir / DIR
    if folder.is_dir():
        kept = {p.resolve() for p in keep}
        for p in folder.glob("s*-*.js"):
            if p.resolve() not in kept:
                p.unlink()
