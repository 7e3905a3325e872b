"""The leaderboard's columns: one line per metric (task, label, summary key, per-sample source, direction,
kind, subsets, role, scale, family); see leaderboard/build.py for how cells and composites are computed."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

from leaderboard.collect import Section


@dataclass(frozen=True)
class Column:
    task: str
    label: str
    summary: str  # key in results.json tasks[task].summary; the column is shown when a run has it
    sample: str  # corpus: metric name in metrics[subset].signatures; mean: dotted path in a sample record
    higher_is_better: bool = True
    kind: Literal["corpus", "mean", "summary", "drift"] = "mean"
    subsets: str = "*"  # fnmatch patterns over subsets, "|"-separated groups (mean of group means); {pivot}
    role: Literal["translation", "general", ""] = ""
    scale: float = 1.0  # full range of the metric (for composites)
    none: float | None = None  # value for a per-sample None; None = drop that pair
    # judge alternative: used instead of (summary, sample) when the row and its base both have this summary key
    judge_summary: str = ""
    judge_sample: str = ""
    family: str = ""  # general columns: the ability family they measure (the loss composite weighs families equally)


COLUMNS: list[Column] = [
    Column("flores", "chrF++", "chrf", "chrf", kind="corpus", role="translation", scale=100),
    Column("flores", "chrF++ x-en", "chrf_x-pivot", "chrf", kind="corpus", subsets="*-{pivot}", scale=100),
    Column("flores", "chrF++ en-x", "chrf_pivot-x", "chrf", kind="corpus", subsets="{pivot}-*", scale=100),
    Column("flores", "BLEU", "bleu", "bleu", kind="corpus", role="translation", scale=100),
    Column("flores", "BLEU x-en", "bleu_x-pivot", "bleu", kind="corpus", subsets="*-{pivot}", scale=100),
    Column("flores", "BLEU en-x", "bleu_pivot-x", "bleu", kind="corpus", subsets="{pivot}-*", scale=100),
    Column("flores", "COMET", "comet", "", kind="summary"),  # per-segment COMET is not in samples.jsonl
    Column("flores", "off-target", "off_target", "scores.off_target", higher_is_better=False, none=0.0),
    Column("ifeval", "IFEval prompt strict", "prompt_level_strict_acc", "ifeval.prompt_level_strict", role="general",
           family="instruction following"),
    Column("alpaca_eval", "AlpacaEval win rate", "win_rate", "judgment.win", role="general",
           family="instruction following"),
    Column("mtbench", "MT-Bench", "score", "judgment.turns[*].score", role="general", scale=9,
           family="instruction following"),
    Column("hellaswag", "HellaSwag acc_norm", "acc_norm", "acc_norm", role="general", family="knowledge & commonsense"),
    Column("arc_easy", "ARC-E acc_norm", "acc_norm", "acc_norm", role="general", family="knowledge & commonsense"),
    Column("arc_challenge", "ARC-C acc_norm", "acc_norm", "acc_norm", role="general",
           family="knowledge & commonsense"),
    Column("piqa", "PIQA acc_norm", "acc_norm", "acc_norm", role="general", family="knowledge & commonsense"),
    Column("winogrande", "WinoGrande acc", "acc", "acc", role="general", family="knowledge & commonsense"),
    Column("mmlu", "MMLU acc", "acc", "acc", role="general", family="knowledge & commonsense"),
    # the MC2 score (probability mass on the true answers) is stored as `acc` by tasks/multiple_choice.py
    Column("truthfulqa_mc2", "TruthfulQA MC2", "acc", "acc", role="general", family="knowledge & commonsense"),
    Column("mgsm", "MGSM acc", "exact_match_flexible", "correct.flexible", role="general", none=0.0, family="math"),
    Column("xlsum", "XL-Sum ROUGE-L", "rougeL", "scores.rougeL", role="general", scale=100, family="summarization"),
    Column("safety", "refusal (harmful)", "refusal_harmful", "refusal", role="general",
           subsets="advbench|harmbench|xstest_unsafe|multijail_*",
           judge_summary="judge_refusal_harmful", judge_sample="judgment.refusal", family="safety"),
    Column("safety", "over-refusal", "over_refusal", "refusal", higher_is_better=False, subsets="xstest_safe",
           role="general", judge_summary="judge_over_refusal", judge_sample="judgment.refusal", family="safety"),
    # judge-free drift (nats/token): shown with intervals, not in the composite (it measures change, not loss)
    Column("mtbench", "MT-Bench drift", "drift_nll", "", higher_is_better=False, kind="drift"),
    Column("alpaca_eval", "AlpacaEval drift", "drift_nll", "", higher_is_better=False, kind="drift"),
]
COMPOSITES = {"translation gain": "translation", "general-ability loss": "general"}
# Hooks of translation test sets defined in YAML only (tasks/translation.py): each such task gets the FLORES
# columns, labelled with the task name ("wmt16 BLEU"), and its chrF++/BLEU count in the translation gain.
TRANSLATION_HOOKS = ("translation",)


def section_columns(sec: Section) -> list[Column]:
    """COLUMNS plus the FLORES columns repeated for every file-based translation task of the section."""
    names = sorted({t for r in sec.rows for t, tr in r.tasks.items()
                    if tr.entry.get("config", {}).get("hook") in TRANSLATION_HOOKS})
    flores = [c for c in COLUMNS if c.task == "flores"]
    extra = [dataclasses.replace(c, task=t, label=f"{t} {c.label}") for t in names for c in flores]
    at = max(i for i, c in enumerate(COLUMNS) if c.task == "flores") + 1  # translation columns first
    return COLUMNS[:at] + extra + COLUMNS[at:]
