"""Leaderboard cells: one column of one row, as a value, its Δ versus the base row and the paired bootstrap interval.

A task declares each column's `kind` (harness/task.py `Column`); each kind is one small class here with `cell()`:
`Corpus` (a sacrebleu corpus metric rebuilt from the subset's signature, resampled from sufficient statistics) and
`Mean` (the mean of a per-sample value) share the paired resampling of `Resampled`; `Summary` shows the
results.json value with no interval; `Drift` resamples the per-document sums of drift.json by document. The
`Evaluator` caches samples, statistics and resample counts across cells.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field, replace

import numpy as np

from harness.metrics.translation import record_ref_streams
from leaderboard import stats
from leaderboard.collect import Row, TaskRun
from leaderboard.columns import Column


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
        """(point, bootstrap array or None) of one run on one subset over the given ids, computed by the column's
        kind (`KINDS[col.kind].compute`; cached)."""
        k = (tr.run_dir, tr.task, subset, col.kind, col.sample, col.none, tuple(ids), paired)
        if k not in self._scores:
            self._scores[k] = KINDS[col.kind].compute(self, col, tr, subset, ids, paired)
        return self._scores[k]

    def corpus_stats(self, metric, tr: TaskRun, subset: str, name: str, ids: list[str]) -> np.ndarray:
        k = (tr.run_dir, tr.task, subset, name, tuple(ids))
        if k not in self._stats:
            recs = [self.samples(tr)[i] for i in ids]
            self._stats[k] = stats.corpus_stats(metric, [r["outputs"][0] for r in recs],
                                                record_ref_streams(recs, f"{tr.run_dir}/{tr.task} ({subset})"))
        return self._stats[k]


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
    """The cell of `col` in `row` (None when the row's run lacks the column), with its source noted."""
    tr = row.tasks.get(col.task)
    if tr is None or col.key not in tr.entry.get("summary", {}):
        return None
    used, source = with_source(col, tr, base.tasks.get(col.task) if base is not None and base is not row else None)
    out = KINDS[used.kind].cell(ev, used, row, base)
    if out is not None:
        out.source = source
    return out


def _base_run(col: Column, row: Row, base: Row | None) -> TaskRun | None:
    return base.tasks.get(col.task) if base is not None and base is not row else None


class Summary:
    """The results.json summary value as is; Δ versus the base's, no interval."""

    def cell(self, ev: Evaluator, col: Column, row: Row, base: Row | None) -> Cell | None:
        v = row.tasks[col.task].entry["summary"][col.key]
        b = _base_run(col, row, base)
        bv = b.entry.get("summary", {}).get(col.key) if b else None
        return Cell(v, None if bv is None else v - bv, note="no interval (run-level value)")


class Resampled:
    """Per-subset point values and paired bootstrap arrays over the same sample ids in the row and its base, averaged
    over the column's subset groups. Subclasses say how one run scores a set of ids (`scores`) and which ids count."""

    def usable(self, ev: Evaluator, col: Column, runs: list[TaskRun], ids: list[str]) -> list[str]:
        return ids

    def compute(self, ev: Evaluator, col: Column, tr: TaskRun, subset: str, ids: list[str], paired: bool):
        """(point, bootstrap array over the task's shared resamples, or None when not `paired`)."""
        raise NotImplementedError


    def cell(self, ev: Evaluator, col: Column, row: Row, base: Row | None) -> Cell | None:
        tr = row.tasks[col.task]
        groups = column_groups(col, tr)
        if not groups:
            return None
        btr = _base_run(col, row, base)
        points, bpoints, boots, bboots = {}, {}, {}, {}
        for s in dict.fromkeys(x for g in groups for x in g):
            ids = ev.subset_ids(tr, s)
            if btr is not None:
                bids = ev.subset_ids(btr, s)
                if bids != ids:
                    return Cell(note=f"samples of {s} differ from base ({len(ids)} vs {len(bids)} ids); not paired")
                ids = self.usable(ev, col, [tr, btr], ids)
                if not ids:
                    return Cell(note=f"no scored samples in {s}")
                points[s], boots[s] = ev.scores(col, tr, s, ids, True)
                bpoints[s], bboots[s] = ev.scores(col, btr, s, ids, True)
            else:
                ids = self.usable(ev, col, [tr], ids)
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


class Corpus(Resampled):
    """A sacrebleu corpus metric (chrF++, BLEU) over the subset, resampled from sufficient statistics."""

    def compute(self, ev: Evaluator, col: Column, tr: TaskRun, subset: str, ids: list[str], paired: bool):
        metric = ev.metric(tr, subset, col.sample)
        st = ev.corpus_stats(metric, tr, subset, col.sample, ids)
        boot = stats.corpus_boot(metric, st, ev.counts(col.task, subset, len(ids))) if paired else None
        return stats.corpus_score(metric, st), boot


class Mean(Resampled):
    """The mean of a per-sample value; a pair where either side has no value is dropped (unless `col.none`)."""

    def usable(self, ev: Evaluator, col: Column, runs: list[TaskRun], ids: list[str]) -> list[str]:
        if col.none is not None:
            return ids
        recs = [ev.samples(tr) for tr in runs]
        return [i for i in ids if all(get_path(r[i], col.sample) is not None for r in recs)]

    def compute(self, ev: Evaluator, col: Column, tr: TaskRun, subset: str, ids: list[str], paired: bool):
        recs = ev.samples(tr)
        vals = np.array([_num(get_path(recs[i], col.sample), col.none) for i in ids], dtype=float)
        boot = stats.mean_boot(vals, ev.counts(col.task, subset, len(ids))) if paired else None
        return float(vals.mean()), boot


NO_PER_DOC_KL = "no interval: this run's drift.json has no per-document KL (summary value shown)"


class Drift:
    """Drift over the documents (harness/metrics/drift.py): `sample` "nll" = Σ(NLL eval − NLL base) / Σ tokens (signed),
    "kl" = Σ KL(base‖eval) / Σ tokens; resampled by document with the task's shared resamples; Δ versus the base row
    (whose drift and KL are 0 by construction). A run without per-document sums (KL: drift.json files written before
    the per-document KL existed) shows its summary value without an interval, and says so."""

    def cell(self, ev: Evaluator, col: Column, row: Row, base: Row | None) -> Cell | None:
        out = drift_cell(ev, col, row, base)
        if out is not None:
            return out
        c = Summary().cell(ev, col, row, base)
        if c is not None and col.sample == "kl":
            c.note = NO_PER_DOC_KL
        return c


def _drift_sums(tr: TaskRun, ids: list[str], kl: bool = False) -> tuple[np.ndarray, np.ndarray] | None:
    """Per-document (Σ NLL eval − Σ NLL base, or Σ KL with `kl`; answer tokens) from the run's drift.json, or None
    without them."""
    per = (tr.drift() or {}).get("per_id")
    if not per or any(i not in per for i in ids) or (kl and any(len(per[i]) < 4 for i in ids)):
        return None
    return (np.array([per[i][3] if kl else per[i][0] - per[i][1] for i in ids], dtype=float),
            np.array([per[i][2] for i in ids], dtype=float))


def drift_cell(ev: Evaluator, col: Column, row: Row, base: Row | None) -> Cell | None:
    """The `Drift` kind's cell from per-document sums, or None when the run (or a subset of it) has none."""
    kl = col.sample == "kl"
    tr = row.tasks[col.task]
    btr = base.tasks.get(col.task) if base is not None and base is not row else None
    points, bpoints, boots, bboots = {}, {}, {}, {}
    groups = column_groups(col, tr)
    for s in dict.fromkeys(x for g in groups for x in g):
        ids = ev.subset_ids(tr, s)
        sums = _drift_sums(tr, ids, kl)
        if sums is None or not ids:
            return None
        counts = ev.counts(col.task, s, len(ids))
        d, n = sums
        points[s] = float(d.sum() / n.sum())
        boots[s] = (counts @ d) / np.maximum(counts @ n, 1.0)
        if btr is not None:
            if ev.subset_ids(btr, s) != ids:
                return Cell(note=f"samples of {s} differ from base; not paired")
            bsums = _drift_sums(btr, ids, kl)
            bd, bn = bsums if bsums is not None else (np.zeros(len(ids)), np.ones(len(ids)))  # base: drift, KL 0
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


KINDS = {"corpus": Corpus(), "mean": Mean(), "summary": Summary(), "drift": Drift()}
