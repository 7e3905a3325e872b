"""Leaderboard tables: one row per method × base model, every column as Δ versus that model's `base` run.

Columns are declared by the tasks themselves (`Task.leaderboard`, harness/task.py `Column`: label, summary key,
per-sample source, direction, kind, subsets, role, scale, family); leaderboard/columns.py gathers those of the
section's tasks and orders them. A column is shown when any run in the section has its summary key; a run that
lacks a key its task declares as always reported gets a table note (a renamed metric is never dropped silently).
Kinds: `corpus` (sacrebleu corpus metric rebuilt from the per-subset signature, bootstrapped from
sufficient statistics), `mean` (mean of a per-sample value found at a dotted path, `[*]` averaging a
list), `summary` (the results.json summary value as is; Δ without an interval). Group columns (x-en,
en-x) average the per-subset scores over the matching subsets, like the task's own summary.
Safety's refusal columns have a judge alternative: when the row and its base both carry the judge's
summary (`harness run/judge --judge ...`), per-sample judge verdicts (`judgment.refusal`) are used instead
of the judge-free classifier's `refusal`; the table notes say which source each row used.

Δ = method − base on the same samples (paired by sample id); the 95% interval is the 2.5%/97.5% order
statistic of the paired bootstrap distribution of Δ, over sacrebleu's own resamples (leaderboard/stats.py). † marks an interval
that contains 0.

Composites (percentage points of each metric's full scale, `scale` below; base = 0 by definition):

    translation gain     =  mean over translation columns c of  100 · s_c · Δ_c / scale_c
    general-ability loss = −mean over families F present of ( mean over F's columns c present of 100 · s_c · Δ_c / scale_c )

with s_c = +1 when higher is better and −1 otherwise. Positive gain = translates better, positive loss =
worse at everything else. Translation columns: FLORES chrF++ and BLEU averages, and those of every translation
test set defined by files in YAML (hook `translation`: WMT16, Multi30k, ...; same columns prefixed with the task
name, multi-reference statistics when the samples carry several references) (the x-en/en-x splits
and off-target rate are shown but not counted twice; COMET is shown with its Δ but has no interval and is
not in the composite, because samples.jsonl does not keep per-segment COMET scores). The translation gain needs
every translation column of the section for that row; otherwise it is left blank.

General-ability families (column `family`): instruction following (IFEval prompt-level strict accuracy,
AlpacaEval win rate when judged, MT-Bench judge score when judged), knowledge & commonsense (HellaSwag, ARC-E,
ARC-C, PIQA acc_norm; WinoGrande, MMLU acc; TruthfulQA MC2), math (MGSM, GSM8K), summarization (XL-Sum ROUGE-L), safety
(refusal on harmful prompts, over-refusal). The loss uses whichever general columns the row has with a Δ and an
interval, averages them within their family and then the families with equal weight: at 135M the seven
log-likelihood tasks barely move after translation fine-tuning while how the model talks does (LESSONS.md, "What
moves at 135M"), so they count as one family instead of drowning IFEval 7:1. The table notes list, per row, the
families and how many columns each had. Judge-free drift (MT-Bench, AlpacaEval; nats/token, kind `drift`) is shown
with document-resampled intervals but is not in the loss: it has no full scale and measures change, not harm.
Composite intervals come from the same bootstrap resamples (tasks resampled independently).
"""

from __future__ import annotations

import json
import math
import re
import statistics
from dataclasses import dataclass, field, replace

import numpy as np
from tqdm.auto import tqdm

from harness.metrics.translation import record_ref_streams
from leaderboard import stats
from leaderboard.collect import Row, Section, TaskRun, describe_difference
from leaderboard.columns import COMPOSITES, Column, missing_keys, section_columns


@dataclass
class Cell:
    value: float | None = None  # this row's score
    delta: float | None = None  # versus base; None on base rows and when no base
    lo: float | None = None
    hi: float | None = None
    note: str = ""
    source: str = ""  # where per-sample values came from, for columns with a judge alternative
    boot: np.ndarray | None = field(default=None, repr=False)

    @property
    def crosses_zero(self) -> bool:
        return self.lo is not None and self.hi is not None and self.lo <= 0 <= self.hi


@dataclass
class RowResult:
    label: str
    method: str
    model: str
    is_base: bool
    cells: dict[str, Cell] = field(default_factory=dict)
    composites: dict[str, Cell] = field(default_factory=dict)
    not_run: str = ""  # the reason, for a method deliberately not run (not_run.json; leaderboard/notrun.py)
    seed: int | None = None  # training seed (None for the untouched base model)
    variant: str = ""  # method config hash (leaderboard/collect.py Row.variant): seeds of one variant group together
    tasks: dict = field(default_factory=dict, repr=False)  # task -> collect.TaskRun (the page's sample view)


@dataclass
class Table:
    title: str
    settings: str
    columns: list[Column]
    rows: list[RowResult]
    notes: list[str]
    versus_ref: str = ""  # the reference method of `versus` (leaderboard/versus.py)
    versus: list = field(default_factory=list)  # versus.Versus per method row


def get_path(rec: dict, path: str):
    cur = [rec]
    for part in path.split("."):
        star = part.endswith("[*]")
        key = part[:-3] if star else part
        nxt = []
        for c in cur:
            v = c.get(key) if isinstance(c, dict) else None
            if star:
                nxt.extend(v if isinstance(v, list) else [])
            else:
                nxt.append(v)
        cur = nxt
    if "[*]" in path:
        vals = [float(v) for v in cur if isinstance(v, (int, float))]
        return sum(vals) / len(vals) if vals else None
    return cur[0] if cur else None


class Evaluator:
    """Per-(run, task, subset) caches of samples, statistics and resample counts."""

    def __init__(self, n_boot: int, seed: int):
        self.n_boot, self.seed = n_boot, seed
        self._samples: dict[tuple, dict] = {}
        self._counts: dict[tuple, np.ndarray] = {}
        self._metrics: dict[tuple, object] = {}
        self._scores: dict[tuple, tuple] = {}
        self._stats: dict[tuple, np.ndarray] = {}

    def samples(self, tr: TaskRun) -> dict[str, dict]:
        k = (tr.run_dir, tr.task)
        if k not in self._samples:
            self._samples[k] = tr.samples()
        return self._samples[k]

    def counts(self, task: str, subset: str, n: int) -> np.ndarray:
        k = (task, subset, n)
        if k not in self._counts:
            self._counts[k] = stats.resample_counts(n, self.n_boot, self.seed, task, subset)
        return self._counts[k]

    def metric(self, tr: TaskRun, subset: str, name: str):
        m = tr.entry["metrics"][subset]
        sig, args = m["signatures"][name], m.get("metric_args", {}).get(name)
        k = (name, sig, json.dumps(args, sort_keys=True))
        if k not in self._metrics:
            self._metrics[k] = stats.metric_from_signature(name, sig, args)
        return self._metrics[k]

    def subset_ids(self, tr: TaskRun, subset: str) -> list[str]:
        """Sample ids of a subset in document order ("de-en/2" before "de-en/10"): resample index i is the
        i-th line, as in sacrebleu given the documents' files, so its `--paired-bs` draws the same resamples."""
        return sorted((i for i, r in self.samples(tr).items() if r.get("subset") == subset), key=_natural)

    def scores(self, col: Column, tr: TaskRun, subset: str, ids: list[str], paired: bool):
        """(point, bootstrap array or None) of one run on one subset over the given ids (cached)."""
        k = (tr.run_dir, tr.task, subset, col.kind, col.sample, col.none, tuple(ids), paired)
        if k not in self._scores:
            self._scores[k] = self._compute(col, tr, subset, ids, paired)
        return self._scores[k]

    def _corpus_stats(self, metric, tr: TaskRun, subset: str, name: str, ids: list[str]) -> np.ndarray:
        k = (tr.run_dir, tr.task, subset, name, tuple(ids))
        if k not in self._stats:
            recs = [self.samples(tr)[i] for i in ids]
            self._stats[k] = stats.corpus_stats(metric, [r["outputs"][0] for r in recs],
                                                record_ref_streams(recs, f"{tr.run_dir}/{tr.task} ({subset})"))
        return self._stats[k]

    def _compute(self, col: Column, tr: TaskRun, subset: str, ids: list[str], paired: bool):
        recs = self.samples(tr)
        if col.kind == "corpus":
            metric = self.metric(tr, subset, col.sample)
            st = self._corpus_stats(metric, tr, subset, col.sample, ids)
            boot = stats.corpus_boot(metric, st, self.counts(col.task, subset, len(ids))) if paired else None
            return stats.corpus_score(metric, st), boot
        vals = np.array([_num(get_path(recs[i], col.sample), col.none) for i in ids], dtype=float)
        boot = stats.mean_boot(vals, self.counts(col.task, subset, len(ids))) if paired else None
        return float(vals.mean()), boot


def _natural(sample_id: str) -> list:
    """Sort key: digit runs compare as numbers (re.split with a group alternates text, number, text, ...)."""
    return [int(t) if k % 2 else t for k, t in enumerate(re.split(r"(\d+)", sample_id))]


def _num(v, none: float | None) -> float:
    if v is None:
        return math.nan if none is None else none
    return float(v)


def column_groups(col: Column, tr: TaskRun) -> list[list[str]]:
    """Groups of subsets: one per "|"-separated pattern that matches any (empty groups dropped)."""
    pivot = str(tr.entry.get("config", {}).get("options", {}).get("pivot", "en"))
    return col.groups(tr.settings["selected"], pivot)


def grouped_mean(values: dict[str, object], groups: list[list[str]]):
    """Mean over groups of the mean over each group's subsets (works for floats and bootstrap arrays)."""
    return np.mean([np.mean([values[s] for s in g], axis=0) for g in groups], axis=0)


def with_source(col: Column, tr: TaskRun, btr: TaskRun | None) -> tuple[Column, str]:
    """The column as computed for this row: judge verdicts when the row (and its base) were judged, else the
    per-sample classifier value; and a short text naming the source."""
    if not col.judge_key:
        return col, ""
    runs = [x for x in (tr, btr) if x is not None]
    if all(isinstance(x.entry.get("summary", {}).get(col.judge_key), (int, float)) for x in runs):
        judges = {str(m["judge"]) for m in tr.entry.get("metrics", {}).values()
                  if isinstance(m, dict) and m.get("judge") and not str(m["judge"]).startswith("not judged")}
        return (replace(col, key=col.judge_key, sample=col.judge_sample),
                f"judge verdicts ({', '.join(sorted(judges))})")
    clf = tr.entry.get("metadata", {}).get("classifier", {})
    name = f"{clf.get('name', '?')} v{clf.get('version', '?')}" if isinstance(clf, dict) else str(clf)
    return col, f"judge-free classifier {name}"


def cell(ev: Evaluator, col: Column, row: Row, base: Row | None) -> Cell | None:
    tr = row.tasks.get(col.task)
    if tr is None or col.key not in tr.entry.get("summary", {}):
        return None
    used, source = with_source(col, tr, base.tasks.get(col.task) if base is not None and base is not row else None)
    out = _cell(ev, used, row, base)
    if out is not None:
        out.source = source
    return out


def _cell(ev: Evaluator, col: Column, row: Row, base: Row | None) -> Cell | None:
    tr = row.tasks[col.task]
    if col.kind == "drift":
        from leaderboard.general import drift_cell

        out = drift_cell(ev, col, row, base)
        if out is not None:
            return out
        col = replace(col, kind="summary")  # a run without per-document drift sums: the value, no interval
    if col.kind == "summary":
        v = tr.entry["summary"][col.key]
        b = base.tasks.get(col.task) if base and base is not row else None
        bv = b.entry.get("summary", {}).get(col.key) if b else None
        return Cell(v, None if bv is None else v - bv, note="no interval (run-level value)")
    groups = column_groups(col, tr)
    if not groups:
        return None
    btr = base.tasks.get(col.task) if base is not None and base is not row else None
    points, bpoints, boots, bboots = {}, {}, {}, {}
    for s in dict.fromkeys(x for g in groups for x in g):
        ids = ev.subset_ids(tr, s)
        if btr is not None:
            bids = ev.subset_ids(btr, s)
            if bids != ids:
                return Cell(note=f"samples of {s} differ from base ({len(ids)} vs {len(bids)} ids); not paired")
            if col.kind == "mean" and col.none is None:  # drop pairs where either side has no value
                recs, brecs = ev.samples(tr), ev.samples(btr)
                ids = [i for i in ids if get_path(recs[i], col.sample) is not None
                       and get_path(brecs[i], col.sample) is not None]
            if not ids:
                return Cell(note=f"no scored samples in {s}")
            points[s], boots[s] = ev.scores(col, tr, s, ids, True)
            bpoints[s], bboots[s] = ev.scores(col, btr, s, ids, True)
        else:
            ids = [i for i in ids if col.kind == "corpus" or col.none is not None
                   or get_path(ev.samples(tr)[i], col.sample) is not None]
            if not ids:
                return Cell(note=f"no scored samples in {s}")
            points[s] = ev.scores(col, tr, s, ids, False)[0]
    value = float(grouped_mean(points, groups))
    out = Cell(value)
    reported = tr.entry["summary"][col.key]
    if btr is None and isinstance(reported, (int, float)) and abs(reported - value) > 1e-6 * max(1.0, abs(value)):
        out.note = f"recomputed {value:.4g} but results.json says {reported:.4g}"
    if btr is not None:
        out.delta = value - float(grouped_mean(bpoints, groups))
        out.boot = grouped_mean(boots, groups) - grouped_mean(bboots, groups)
        out.lo, out.hi = stats.interval(out.boot)
    elif row.method != "base":
        out.note = out.note or "no comparable base run"
    return out


def composite(cells: dict[str, Cell], cols: list[Column], sign: float) -> Cell:
    parts, boots = [], []
    for c in cols:
        x = cells.get(c.label)
        if x is None or x.delta is None or x.boot is None:
            return Cell(note=f"needs {c.label}")
        s = (1 if c.higher_is_better else -1) * sign * 100 / c.scale
        parts.append(s * x.delta)
        boots.append(s * x.boot)
    boot = np.mean(boots, axis=0)
    lo, hi = stats.interval(boot)
    return Cell(float(np.mean(parts)), float(np.mean(parts)), lo, hi, boot=boot)


def build_table(sec: Section, ev: Evaluator, index: int, first: Section | None) -> Table:
    declared, col_notes = section_columns(sec)
    columns = [c for c in declared
               if any(c.key in r.tasks[c.task].entry.get("summary", {}) for r in sec.rows if c.task in r.tasks)]
    rows, notes = [], list(sec.notes) + col_notes
    sources: dict[tuple[str, str], list[str]] = {}  # (column, where its values came from) -> rows
    bar = tqdm(total=len(sec.rows) * len(columns), desc=f"leaderboard section {index + 1}", unit="cell",
               dynamic_ncols=True, leave=False)
    for row in sec.rows:
        base = sec.base_for(row)
        rr = RowResult(row.label, row.method, row.model, row.method == "base", seed=row.seed, variant=row.variant,
                       tasks=row.tasks)
        if base is None:
            notes.append(f"{row.label} on {row.model}: no `base` run of this model with the same settings; "
                         f"no Δ or interval")
        for col in columns:
            c = cell(ev, col, row, base)
            bar.update()
            if c is not None:
                rr.cells[col.label] = c
        for name, role in COMPOSITES.items():
            cols = [c for c in columns if c.role == role]
            if not cols:
                continue
            if rr.is_base:
                rr.composites[name] = Cell(0.0, None, note="reference")
            elif base is not None and role == "translation":
                rr.composites[name] = composite(rr.cells, cols, 1.0)
            elif base is not None:
                from leaderboard.general import family_composite

                rr.composites[name] = family_composite(rr.cells, cols, -1.0)
                if rr.composites[name].note:
                    notes.append(f"{rr.label} on {rr.model}, {name}: {rr.composites[name].note}")
        for t, tr in row.tasks.items():
            notes += [f"{row.label} on {row.model}, task {t}: results.json has no summary key {c.key!r} for column "
                      f"{c.label!r}; run `harness score {tr.run_dir}`" for c in missing_keys(tr)]
            if tr.samples_changed():
                notes.append(f"{tr.run_dir}/{tr.entry.get('samples_file')}: changed since results.json was "
                             f"written; run `harness score {tr.run_dir}`")
        notes += [f"{rr.label} on {rr.model}, {k}: {c.note}" for k, c in rr.cells.items()
                  if c.note and not c.note.startswith(("no interval", "no comparable base"))]
        for k, c in rr.cells.items():
            if c.source:
                sources.setdefault((k, c.source), []).append(f"{rr.label} on {rr.model}")
        rows.append(rr)
    bar.close()
    notes += seed_spread(rows)
    by_source: dict[tuple[str, tuple[str, ...]], list[str]] = {}  # (source, rows) -> columns
    for (k, src), labels in sources.items():
        by_source.setdefault((src, tuple(labels)), []).append(k)
    notes += [f"{', '.join(cols)} from {src}: " + ("all rows" if len(labels) == len(rows) else ", ".join(labels))
              for (src, labels), cols in by_source.items()]
    settings = "; ".join(f"{t}: limit {s['limit'] or 'none'}, {len(s['selected'])} subsets "
                         f"({_short(s['selected'])}), config {s['config_hash']}" for t, s in sorted(sec.settings.items()))
    title = f"Section {index + 1}" + ("" if first is None else f" (not comparable with section 1: "
                                                              f"{describe_difference(first, sec)})")
    return Table(title, settings, columns, rows, notes)


def seed_groups(rows: list[RowResult]) -> list[list[RowResult]]:
    """Rows of one method variant of one model trained with two or more seeds, in table order; a group where one seed
    has several artifacts is left out (which of them to take is not ours to pick). The seed-spread notes, the Versus
    table's seed-mean rows and the plot's seed-mean points all group by this."""
    groups: dict[tuple[str, str, str], list[RowResult]] = {}
    for r in rows:
        if r.seed is not None and not r.not_run:
            groups.setdefault((r.method, r.variant, r.model), []).append(r)
    return [g for g in groups.values() if len(g) >= 2 and len({r.seed for r in g}) == len(g)]


def variant_label(r: RowResult) -> str:
    """A seeded row's label without its seed: "radis seed 1" -> "radis", "sft@ab12 seed 0" -> "sft@ab12"."""
    return r.label.rsplit(" seed ", 1)[0]


def seed_spread(results: list[RowResult]) -> list[str]:
    """One note per composite of a method trained with several seeds: mean, sample sd and range over the seeds (the
    seed-to-seed spread, to read next to each row's bootstrap interval, which covers test-set sampling only)."""
    out = []
    for members in seed_groups(results):
        method, model = members[0].method, members[0].model
        for name in COMPOSITES:
            got = [(rr.seed, rr.composites[name].value) for rr in members
                   if name in rr.composites and rr.composites[name].value is not None]
            if len(got) < 2:
                continue
            vals = [v for _, v in got]
            out.append(f"{method} on {model}, {name} over {len(vals)} seeds ({', '.join(str(sd) for sd, _ in got)}): "
                       f"mean {statistics.mean(vals):+.2f}, sd {statistics.stdev(vals):.2f}, "
                       f"range {min(vals):+.2f} to {max(vals):+.2f}")
    return out


def _short(v: list) -> str:
    return ",".join(v) if len(v) <= 6 else ",".join(v[:6]) + ",…"


def build(sections: list[Section], n_boot: int = 1000, seed: int = 12345) -> list[Table]:
    ev = Evaluator(n_boot, seed)
    ordered = sorted(sections, key=lambda s: -len(s.rows))
    return [build_table(s, ev, i, None if i == 0 else ordered[0]) for i, s in enumerate(ordered)]
