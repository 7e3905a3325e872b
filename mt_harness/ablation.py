"""`harness ablation FOLDER --reference ARM`: the ablation table of a study's arms (a method README's "Ablations").

A study's units are the arms (`studies/ablation-relay.yaml`): one factor changed at a time from the reference arm
(today's default), every arm evaluated on the same documents. For each arm and metric the table gives the arm's
score and its difference from the reference with a paired-bootstrap interval (the leaderboard's bootstrap, through
`harness compare`). A unit named `<arm>-control` is that arm's mechanism-check control (same artifact, evaluated
with a control option, e.g. the relay's shuffled source): the arm must beat it with an interval above 0, and the
table says whether it does. Units of the untouched models (`<model>/base` in any model folder of the study's output,
e.g. the relay's partner model run by hand) are rows of their own, and each arm's difference from each of them is a
column (paired by document: every row answered the same documents).

    harness ablation results/ablation-relay --reference layer-last --task flores_dev
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import HarnessError
from harness.rundir.layout import results_file

CONTROL = "-control"


@dataclass
class Cell:
    value: float | None
    delta: float | None = None
    lo: float | None = None
    hi: float | None = None

    def show(self, digits: int = 2) -> str:
        if self.value is None:
            return "–"
        if self.delta is None:
            return f"{self.value:.{digits}f}"
        return f"{self.value:.{digits}f} ({self.delta:+.{digits}f} [{self.lo:+.{digits}f}, {self.hi:+.{digits}f}])"


@dataclass
class Arm:
    name: str  # "<model folder>/<unit>"
    cells: dict[str, Cell] = field(default_factory=dict)  # metric -> score (Δ vs reference)
    control: dict[str, Cell] = field(default_factory=dict)  # metric -> Δ vs its control
    versus: dict[str, dict[str, Cell]] = field(default_factory=dict)  # alone model -> metric -> Δ vs it


@dataclass
class AblationTable:
    task: str
    reference: str
    metrics: list[str]
    arms: list[Arm]
    alone: list[Arm]
    resamples: int

    def markdown(self) -> str:
        head = ["arm", *self.metrics, *(f"{m} − control" for m in self.metrics[:1])]
        head += [f"{self.metrics[0]} − {a.name}" for a in self.alone]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for arm in self.arms:
            row = [arm.name + (" (reference)" if arm.name.endswith("/" + self.reference) else "")]
            row += [arm.cells[m].show() if m in arm.cells else "–" for m in self.metrics]
            c = arm.control.get(self.metrics[0])
            row.append(_delta(c) + ("" if c is None else (" ✓" if c.lo > 0 else " ✗ not above its control")))
            row += [_delta(arm.versus.get(a.name, {}).get(self.metrics[0])) for a in self.alone]
            lines.append("| " + " | ".join(row) + " |")
        for a in self.alone:
            row = [f"{a.name} (alone)"] + [a.cells[m].show() if m in a.cells else "–" for m in self.metrics]
            lines.append("| " + " | ".join(row + [""] * (len(head) - len(row))) + " |")
        lines.append("")
        lines.append(f"{self.task}; scores with (Δ vs {self.reference} [95% paired-bootstrap interval], "
                     f"{self.resamples} resamples); ✓: the arm beats its control with an interval above 0.")
        return "\n".join(lines)


def _delta(c: Cell | None) -> str:
    return "–" if c is None or c.delta is None else f"{c.delta:+.2f} [{c.lo:+.2f}, {c.hi:+.2f}]"


def _pick(comparison, task: str, metrics: list[str]) -> dict[str, Cell]:
    out = {}
    for m in comparison.metrics:
        label = m.name.removesuffix(f" ({task})").removeprefix(f"{task} ")  # "chrF++ (flores)", "flores_dev chrF++"
        if m.task == task and label in metrics:
            out[label] = Cell(m.candidate, m.delta, m.lo, m.hi)
    return out


def ablation_table(folder: str | Path, reference: str, task: str, metrics: list[str],
                   resamples: int = 1000, seed: int = 12345) -> AblationTable:
    from leaderboard.compare import CompareConfig, run_compare

    folder = Path(folder)
    units = [p for p in (folder.glob("*/*")) if results_file(p).is_file()]
    if not units:
        raise HarnessError(f"{folder}: no unit with a results.json (<folder>/<model>/<unit>/results.json)")
    refs = [u for u in units if u.name == reference]
    if len(refs) != 1:
        raise HarnessError(f"--reference {reference}: {len(refs)} units of that name under {folder} (need one; "
                           f"units: {', '.join(sorted({u.name for u in units}))})")
    ref = refs[0]
    cfg = CompareConfig(tasks=[task], worst=0, resamples=resamples, seed=seed, gate=[])
    alone = [u for u in units if u.name == "base"]
    arms = [u for u in units if u.name != "base" and not u.name.endswith(CONTROL)]
    names = {u: f"{u.parent.name}/{u.name}" for u in units}
    out_alone = [Arm(names[a], {m: Cell(v.value) for m, v in _pick(run_compare(ref, a, cfg), task, metrics).items()})
                 for a in sorted(alone, key=lambda u: names[u])]
    out_arms = []
    for u in sorted(arms, key=lambda u: (u != ref, names[u])):
        arm = Arm(names[u])
        arm.cells = _pick(run_compare(ref, u, cfg), task, metrics)
        if u == ref:
            arm.cells = {m: Cell(v.value) for m, v in arm.cells.items()}
        control = u.parent / (u.name + CONTROL)
        if results_file(control).is_file():
            arm.control = _pick(run_compare(control, u, cfg), task, metrics)
        for a in alone:
            arm.versus[names[a]] = _pick(run_compare(a, u, cfg), task, metrics)
        out_arms.append(arm)
    return AblationTable(task, reference, metrics, out_arms, out_alone, resamples)
