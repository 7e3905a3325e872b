"""`harness compare BASELINE CANDIDATE`: a regression gate over two run folders (packed or not).

The two runs are paired sample by sample, per task and subset, after leaderboard/compare_samples.py has checked
that they are comparable (same tasks, documents, task config, prompt template and metric signatures; else a
one-line HarnessError, exit 2). Every metric is computed by the leaderboard's own machinery: the columns the
tasks declare (leaderboard/columns.py), corpus metrics through sufficient statistics and sacrebleu's resamples,
per-sample means, drift (leaderboard/build.py `cell`), and the two composites (translation gain,
general-ability loss) built as the leaderboard builds them, with the baseline in the role of `base`. With the
same resamples and seed, Δ and interval of every metric equal the leaderboard's Δ-versus-base cell of the
candidate when the baseline is the base run.

Verdict per metric, with t its tolerance (in the metric's own units; composites in percentage points) and
[lo, hi] the (1 − alpha) paired-bootstrap interval of Δ = candidate − baseline, oriented so that up is better:

    regressed   hi < −t   (the whole interval is worse than the tolerance)
    improved    lo > +t
    unchanged   otherwise (a metric without an interval, kind `summary`, uses its Δ for both ends)

Exit code 1 when any gated metric regressed or an `--exact` pin failed, 0 otherwise. Default gate: the
composites the runs have. Names in --gate and --tolerance match a metric's label, summary key, metric name or
task (`chrf` matches chrF++, chrF++ x-en and chrF++ en-x; `ifeval` every IFEval column), or a composite's name
or role (`translation`, `general`); for tolerance the most specific match wins (label, then task:key, key,
metric name, task).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from harness.errors import HarnessError
from leaderboard import stats
from leaderboard.build import composite
from leaderboard.cells import Cell, Evaluator, cell
from leaderboard.collect import Row, Section
from leaderboard.columns import COMPOSITES, Column, outdated_notes, section_columns
from leaderboard.general import family_composite

EXACT = ("prompts", "signatures", "outputs")
VERDICTS = ("regressed", "improved", "unchanged", "not compared")


@dataclass
class CompareConfig:
    """What `harness compare` decides with (every field has its CLI option)."""

    gate: list[str] = field(default_factory=list)  # metric names; [] = the composites the runs have
    tolerance: dict[str, float] = field(default_factory=dict)  # name -> allowed worsening (metric units)
    alpha: float = 0.05  # intervals are (1 - alpha) paired-bootstrap intervals
    exact: list[str] = field(default_factory=list)  # of EXACT: must be identical sample by sample
    resamples: int = 1000  # bootstrap resamples (the leaderboard's default)
    seed: int = 12345  # bootstrap seed (the leaderboard's default)
    tasks: list[str] = field(default_factory=list)  # compare only these tasks; [] = every task
    worst: int = 3  # samples shown per worsened metric in the "where did it get worse" view; 0 = none

    def validate(self) -> None:
        if self.resamples < 10:
            raise HarnessError("--resamples: use at least 10 bootstrap resamples (1000 recommended)")
        if not 0 < self.alpha < 1:
            raise HarnessError(f"--alpha {self.alpha}: must be between 0 and 1 (0.05 = 95% intervals)")
        if int(self.resamples * self.alpha / 2) < 1:
            raise HarnessError(f"--alpha {self.alpha} with --resamples {self.resamples}: the interval would be the "
                               f"extreme resamples; raise --resamples to at least {int(2 / self.alpha) + 1}")
        bad = [x for x in self.exact if x not in EXACT]
        if bad:
            raise HarnessError(f"--exact {bad[0]}: unknown; choose from {', '.join(EXACT)}")
        neg = [k for k, v in self.tolerance.items() if not v >= 0]
        if neg:
            raise HarnessError(f"--tolerance {neg[0]}={self.tolerance[neg[0]]}: must be >= 0 (an allowed worsening)")
        if self.worst < 0:
            raise HarnessError("--worst: must be >= 0")


def parse_tolerance(text: str | None) -> dict[str, float]:
    """"chrf=0.5,ifeval=0.01" -> {"chrf": 0.5, "ifeval": 0.01}."""
    out: dict[str, float] = {}
    for item in (x.strip() for x in (text or "").split(",")):
        if not item:
            continue
        name, sep, value = item.rpartition("=")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            name = ""
        if not sep or not name.strip():
            raise HarnessError(f"--tolerance {item!r}: write NAME=VALUE pairs, e.g. chrf=0.5,ifeval=0.01")
    return out


@dataclass
class MetricResult:
    """One metric (a task's column or a composite) of the comparison."""

    name: str  # column label or composite name
    task: str  # "" for a composite
    kind: str  # composite, corpus, mean, drift, summary
    higher_is_better: bool
    baseline: float | None
    candidate: float | None
    delta: float | None
    lo: float | None
    hi: float | None
    tolerance: float = 0.0
    verdict: str = "not compared"
    gated: bool = False
    note: str = ""
    column: Column | None = field(default=None, repr=False)
    cell: Cell | None = field(default=None, repr=False)

    @property
    def key(self) -> str:
        return self.column.key if self.column is not None else COMPOSITES.get(self.name, "")


@dataclass
class Comparison:
    baseline: Path
    candidate: Path
    config: CompareConfig
    metrics: list[MetricResult]
    exact: list = field(default_factory=list)  # compare_samples.ExactCheck per --exact item
    worst: list = field(default_factory=list)  # compare_samples.Worst per worsened metric
    notes: list[str] = field(default_factory=list)
    tasks: list[str] = field(default_factory=list)

    @property
    def regressed(self) -> list[MetricResult]:
        return [m for m in self.metrics if m.gated and m.verdict == "regressed"]

    @property
    def failed_exact(self) -> list:
        return [x for x in self.exact if not x.passed]

    @property
    def exit_code(self) -> int:
        return 1 if self.regressed or self.failed_exact else 0


def verdict(delta: float | None, lo: float | None, hi: float | None, higher: bool, tol: float,
            directed: bool = True) -> str:
    """regressed / improved / unchanged (module docstring); "not compared" without a Δ. A metric with no better or
    worse side (a column with direction "none", e.g. the signed drift) is "changed" or "unchanged", never gated."""
    if delta is None:
        return "not compared"
    lo, hi = (delta, delta) if lo is None or hi is None else (lo, hi)
    if not directed:
        return "changed" if lo > tol or hi < -tol else "unchanged"
    s = 1.0 if higher else -1.0
    worst, best = sorted((s * lo, s * hi))
    if best < -tol:
        return "regressed"
    if worst > tol:
        return "improved"
    return "unchanged"


def _names(m: MetricResult) -> list[tuple[int, str]]:
    """(specificity, lower-case name) pairs a --gate/--tolerance name may use for this metric (0 = most specific)."""
    if m.column is None:
        return [(0, m.name.lower()), (1, COMPOSITES[m.name])]
    c = m.column
    return [(0, m.name.lower()), (1, f"{c.task}:{c.key}".lower()), (2, c.key.lower()), (3, c.sample.lower()),
            (4, c.task.lower())]


def matches(name: str, m: MetricResult) -> int | None:
    """Specificity of `name` for metric m (lower = more specific), None when it does not name m."""
    got = [rank for rank, n in _names(m) if n and n == name.strip().lower()]
    return min(got) if got else None


def _apply_gate_and_tolerance(metrics: list[MetricResult], cfg: CompareConfig) -> None:
    for name in list(cfg.gate) + list(cfg.tolerance):
        if not any(matches(name, m) is not None for m in metrics):
            flag = "--gate" if name in cfg.gate else "--tolerance"
            raise HarnessError(f"{flag} {name}: names no metric of these runs (metrics: "
                               f"{', '.join(m.name for m in metrics)}; or a task, summary key or metric name)")
    gate = cfg.gate or [n for n in COMPOSITES if any(m.name == n for m in metrics)]
    if not gate:
        raise HarnessError("no translation or general-ability column in these runs (no composite to gate); "
                           "name the metrics to gate with --gate")
    for m in metrics:
        m.gated = any(matches(g, m) is not None for g in gate)
        ranked = sorted((r, tol) for k, tol in cfg.tolerance.items() if (r := matches(k, m)) is not None)
        m.tolerance = ranked[0][1] if ranked else 0.0
        m.verdict = verdict(m.delta, m.lo, m.hi, m.higher_is_better, m.tolerance,
                            m.column is None or m.column.has_direction)
        if m.gated and m.verdict == "not compared":
            raise HarnessError(f"gated metric {m.name}: not compared ({m.note or 'no value in one of the runs'}); "
                               f"fix the run or leave it out of --gate")


def _result(name: str, task: str, kind: str, higher: bool, c: Cell | None, level: float,
            column: Column | None) -> MetricResult:
    if c is None:
        return MetricResult(name, task, kind, higher, None, None, None, None, None, note="missing in a run",
                            column=column)
    if c.boot is not None and c.delta is not None:
        lo, hi = stats.interval(c.boot, level)
        c = replace(c, lo=lo, hi=hi)
    base = None if c.value is None or c.delta is None else c.value - c.delta
    if column is None:  # a composite: baseline 0 by definition, candidate = Δ
        base, value = (0.0, c.delta) if c.delta is not None else (None, None)
    else:
        value = c.value
    return MetricResult(name, task, kind, higher, base, value, c.delta, c.lo, c.hi, note=c.note, column=column,
                        cell=c)


def _recomputed(ev: Evaluator, col: Column, base: Row, cand: Row) -> list[str]:
    """A note per run whose results.json value disagrees with the one recomputed from its samples (the leaderboard's
    own check of a row without a base: a scoring change since the run, or an edited file); Δ uses the samples."""
    out = []
    for row in (base, cand):
        own = cell(ev, col, row, None)
        if own is not None and own.note.startswith("recomputed"):
            out.append(f"{row.label}: {col.task} {col.label}: {own.note}; "
                       f"run `harness score {row.tasks[col.task].run_dir}`")
    return out


def compute_metrics(base: Row, cand: Row, cfg: CompareConfig, ev: Evaluator, notes: list[str]) -> list[MetricResult]:
    """Every declared column of the compared tasks and the composites, candidate − baseline (leaderboard/build.py)."""
    sec = Section(rows=[base, cand])
    declared, col_notes = section_columns(sec)
    notes += col_notes
    columns = [c for c in declared if any(c.key in r.tasks[c.task].entry.get("summary", {})
                                          for r in (base, cand) if c.task in r.tasks)]
    level = 1 - cfg.alpha
    cells: dict[str, Cell] = {}
    out: list[MetricResult] = []
    for col in columns:
        c = cell(ev, col, cand, base)
        if c is not None and col.key not in base.tasks[col.task].entry.get("summary", {}):
            c = Cell(note=f"the baseline's results.json lacks {col.key!r}")
        if c is not None:
            cells[col.label] = c
            notes += _recomputed(ev, col, base, cand)
        out.append(_result(col.label, col.task, col.kind, col.higher_is_better, c, level, col))
    comps = []
    for name, role in COMPOSITES.items():
        cols = [c for c in columns if c.role == role]
        if cols:
            made = composite(cells, cols, 1.0) if role == "translation" else family_composite(cells, cols, -1.0)
            if made.note and made.delta is None:
                notes.append(f"{name}: not computed ({made.note})")
            comps.append(_result(name, "", "composite", role == "translation", made, level, None))
    for row, who in ((base, "baseline"), (cand, "candidate")):
        for tr in row.tasks.values():
            notes += outdated_notes(tr, who)
    return comps + out


def run_compare(baseline: Path, candidate: Path, cfg: CompareConfig) -> Comparison:
    """Load, check, pair, compute, decide (the API and CLI call this)."""
    from leaderboard import compare_samples as cs

    cfg.validate()
    base, cand = cs.load_row(baseline, "baseline"), cs.load_row(candidate, "candidate")
    notes: list[str] = []
    tasks = cs.shared_tasks(base, cand, cfg.tasks, notes)
    base.tasks = {t: base.tasks[t] for t in tasks}
    cand.tasks = {t: cand.tasks[t] for t in tasks}
    ev = Evaluator(cfg.resamples, cfg.seed)
    cs.check_comparable(base, cand, ev)
    metrics = compute_metrics(base, cand, cfg, ev, notes)
    _apply_gate_and_tolerance(metrics, cfg)
    result = Comparison(baseline, candidate, cfg, metrics, notes=notes, tasks=tasks)
    result.exact = [cs.exact_check(what, base, cand, ev) for what in cfg.exact]
    result.worst = cs.worst_samples(result, base, cand, ev) if cfg.worst else []
    return result
