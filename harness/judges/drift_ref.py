"""Where the base model's answers for judge-free drift come from (`--drift-ref`, the run's own samples, or the cached
base answers of harness.judges.base_answers)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from harness.errors import HarnessError
from harness.rundir.layout import SAMPLES_FILE, samples_file


@dataclass
class DriftPlan:
    """Where the base model's answers come from: a samples.jsonl path, or a reason why there are none."""

    ref: Path | None
    reason: str = ""


def plan_drift(ref: str | None, task_name: str, own_samples: Path, evaluated_is_base: bool) -> DriftPlan | None:
    """Resolve --drift-ref: an explicit samples.jsonl (or run folder), else the run's own samples when the
    evaluated model is the base model; None = use the cached base answers (harness.judges.base_answers)."""
    if ref:
        p = Path(ref)
        if p.is_dir():
            p = samples_file(p, task_name) if (p / task_name).is_dir() else p / SAMPLES_FILE
            if not p.exists() and p.with_name(SAMPLES_FILE + ".gz").exists():  # a packed run (`harness pack`)
                p = p.with_name(SAMPLES_FILE + ".gz")
        if not p.exists():
            raise HarnessError(f"--drift-ref {ref}: no such samples file (give <base run>/{task_name}/samples.jsonl)")
        return DriftPlan(p)
    if evaluated_is_base:
        return DriftPlan(own_samples)
    return None
