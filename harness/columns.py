"""The leaderboard column contract a task declares (`Task.leaderboard`) and the leaderboard computes
(leaderboard/cells.py): which summary key, which per-sample value, which direction, which composite it counts in.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Literal

from harness.errors import HarnessError


@dataclass(frozen=True)
class Column:
    """One leaderboard column a task declares (`Task.leaderboard`): the summary key it shows and how the leaderboard
    recomputes it from samples.jsonl for a paired bootstrap interval (leaderboard/build.py).

    kind: `corpus` = sacrebleu metric `sample` rebuilt from metrics[subset].signatures, resampled from sufficient
    statistics; `mean` = mean of the per-sample value at the dotted path `sample` (`[*]` averages a list);
    `summary` = the results.json value as is (no interval); `drift` = per-document sums of <run>/<task>/drift.json
    (`sample` "nll": the signed NLL drift; "kl": KL(base‖eval)).
    """

    label: str  # column title; unique over all tasks shown together
    key: str  # key in results.json tasks[task].summary; the column is shown when a run has it
    sample: str = ""  # corpus: metric name; mean: dotted path in a sample record; drift: "nll" (default) or "kl"
    # which way is better; "none" = a change with no better/worse side (signed drift): no arrow, never in a composite
    direction: Literal["higher", "lower", "none"] = "higher"
    kind: Literal["corpus", "mean", "summary", "drift"] = "mean"
    subsets: str = "*"  # fnmatch patterns over subsets, "|"-separated groups (mean of group means); {pivot}
    role: Literal["translation", "general", ""] = ""  # composite it counts in: translation gain, general loss, none
    scale: float = 1.0  # full range of the metric (composites are in percent of it): 100 for percent, 1 for rates
    family: str = ""  # general columns: the ability family (the loss composite weighs families equally)
    none: float | None = None  # value for a per-sample None; None = drop that pair
    # when the summary may lack `key` ("judged", "--comet-model given"); "" = every run whose selected subsets
    # match `subsets` reports it, checked when results are aggregated (a renamed metric fails loudly)
    when: str = ""
    # judge alternative: used instead of (key, sample) when the row and its base both have this summary key
    judge_key: str = ""
    judge_sample: str = ""
    task: str = ""  # filled in by Task.leaderboard_columns()

    def __post_init__(self):
        where = f"leaderboard column {self.label!r}"
        if self.direction not in ("higher", "lower", "none"):
            raise HarnessError(f"{where}: direction {self.direction!r} must be 'higher', 'lower' or 'none'")
        if self.direction == "none" and self.role:
            raise HarnessError(f"{where}: a column with direction 'none' cannot count in a composite (role "
                               f"{self.role!r}); give it a direction or role ''")
        if self.kind == "drift" and self.sample not in ("", "nll", "kl"):
            raise HarnessError(f"{where}: a drift column's sample {self.sample!r} must be 'nll' or 'kl'")
        if self.kind not in ("corpus", "mean", "summary", "drift"):
            raise HarnessError(f"{where}: kind {self.kind!r} must be corpus, mean, summary or drift")
        if self.role not in ("translation", "general", ""):
            raise HarnessError(f"{where}: role {self.role!r} must be 'translation', 'general' or ''")
        if not self.scale > 0:
            raise HarnessError(f"{where}: scale must be > 0 (the metric's full range)")
        if self.kind in ("corpus", "mean") and not self.sample:
            raise HarnessError(f"{where}: kind {self.kind} needs `sample` (metric name or per-sample path)")

    @property
    def higher_is_better(self) -> bool:
        return self.direction == "higher"

    @property
    def has_direction(self) -> bool:
        """False for a column with no better/worse side (direction "none"): shown without an arrow."""
        return self.direction != "none"

    def groups(self, selected: list[str], pivot: str) -> list[list[str]]:
        """Groups of selected subsets: one per "|"-separated pattern that matches any (empty groups dropped)."""
        pats = [p.replace("{pivot}", pivot) for p in self.subsets.split("|")]
        return [g for g in ([s for s in selected if fnmatch.fnmatchcase(s, p)] for p in pats) if g]
