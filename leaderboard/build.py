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
statistic of the paired bootstrap distribution of Δ, over sacrebleu's own resamples (leaderboard/stats.py).
† marks an interval that contains 0.

Composites (percentage points of each metric's full scale, `scale` below; base = 0 by definition):

    translation gain     =  mean over translation columns c of  100 · s_c · Δ_c / scale_c
    general-ability loss = −mean over families F present of
                           ( mean over F's columns c present of 100 · s_c · Δ_c / scale_c )

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
with document-resampled intervals but is not in the loss: it has no full scale and measures change, not harm. Its
KL-to-base column (≥ 0, lower = less change) is the change; the signed NLL drift beside it has direction "none"
(no arrow: negative means sharper on the base's own answers, not less forgetting).
Composite intervals come from the same bootstrap resamples (tasks resampled independently).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

import numpy as np
from tqdm.auto import tqdm

from leaderboard import stats
from leaderboard.cells import NO_PER_DOC_KL, Cell, Evaluator, cell
from leaderboard.collect import Section, control_of, describe_difference
from leaderboard.columns import COMPOSITES, Column, outdated_notes, section_columns
from leaderboard.general import family_composite


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
    stale: str = ""  # why the row was trained with another method config than the current default ("" = current)
    mechanism: str = ""  # the method's mechanism check, from its run (leaderboard/mechanism.py)

    @property
    def control(self) -> str:
        """"" for a method row; the control its run was decoded as (collect.control_of): not a method row, so not
        compared with the reference method or plotted."""
        return control_of(self.tasks)


@dataclass
class Table:
    title: str
    settings: str
    columns: list[Column]
    rows: list[RowResult]
    notes: list[str]
    versus_ref: str = ""  # the reference method of `versus` (leaderboard/versus.py)
    versus: list = field(default_factory=list)  # versus.Versus per method row


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
            if rr.is_base:  # a partner model scored on translation alone has no general-ability reference
                if any(c.label in rr.cells for c in cols):
                    rr.composites[name] = Cell(0.0, None, note="reference")
            elif base is not None and role == "translation":
                rr.composites[name] = composite(rr.cells, cols, 1.0)
            elif base is not None:
                rr.composites[name] = family_composite(rr.cells, cols, -1.0)
                if rr.composites[name].note:
                    notes.append(f"{rr.label} on {rr.model}, {name}: {rr.composites[name].note}")
        for tr in row.tasks.values():
            notes += outdated_notes(tr, f"{row.label} on {row.model}")
        notes += [f"{rr.label} on {rr.model}, {k}: {c.note}" for k, c in rr.cells.items()
                  if c.note and not c.note.startswith(("no interval", "no comparable base"))]
        for k, c in rr.cells.items():
            if c.source:
                sources.setdefault((k, c.source), []).append(f"{rr.label} on {rr.model}")
        rows.append(rr)
    bar.close()
    notes += seed_spread(rows) + drift_notes(columns, rows)
    by_source: dict[tuple[str, tuple[str, ...]], list[str]] = {}  # (source, rows) -> columns
    for (k, src), labels in sources.items():
        by_source.setdefault((src, tuple(labels)), []).append(k)
    notes += [f"{', '.join(cols)} from {src}: " + ("all rows" if len(labels) == len(rows) else ", ".join(labels))
              for (src, labels), cols in by_source.items()]
    settings = "; ".join(f"{t}: limit {s['limit'] or 'none'}, {len(s['selected'])} subsets "
                         f"({_short(s['selected'])}), config {s['config_hash']}"
                         for t, s in sorted(sec.settings.items()))
    title = f"Section {index + 1}" + ("" if first is None else f" (not comparable with section 1: "
                                                              f"{describe_difference(first, sec)})")
    return Table(title, settings, columns, rows, notes)


def drift_notes(columns: list[Column], rows: list[RowResult]) -> list[str]:
    """How to read the drift columns: KL is the change, the signed drift has no better side; which rows' KL has no
    interval (their drift.json predates per-document KL)."""
    out = []
    signed = [c.label for c in columns if c.kind == "drift" and not c.has_direction]
    if signed:
        out.append(f"{', '.join(signed)}: NLL of the base model's own answers under the method minus under the base "
                   f"(nats/token); it has no better/worse direction. Negative = the model became sharper on the "
                   f"base's own greedy answers (e.g. training on its own greedy text); it is not less forgetting. "
                   f"The KL-to-base columns (≥ 0, lower = less change) measure how far the model moved.")
    for c in columns:
        if c.kind == "drift" and c.sample == "kl":
            labels = [f"{r.label} on {r.model}" for r in rows
                      if c.label in r.cells and r.cells[c.label].note == NO_PER_DOC_KL and not r.is_base]
            if labels:
                out.append(f"{c.label}: no interval for {', '.join(labels)}: their drift.json has no per-document KL "
                           f"(written before it was recorded); the run's summary KL is shown")
    return out


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
