"""A study's phases and their dependencies, and which of them are already done.

A *unit* is one method, seed and model, in `<output>/<model>/<unit>/`; its phases are `train` (every method but
`base`) and one per evaluation block. An evaluation waits for its unit's training; a block holding a drift task
(MT-Bench, AlpacaEval) of a trained method also waits for the same block of the model's `base` unit, whose
answers are the drift reference (`--drift-ref`). A phase is done when its results are complete: every task of the
block has its results.json entry, with the block's limit and languages, and its samples (plain or packed by
`harness pack`) with the hash results.json recorded, and drift.json for drift tasks. Training is done when every
evaluation of its unit is, or when its recorded artifact is still in the cache.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import HarnessError
from harness.rundir.phases import read_phases
from harness.rundir.layout import results_file
from harness.rundir.read import read_drift, read_results, samples_path, samples_sha256
from mt_harness.study.spec import TRAIN, Block, MethodEntry, Resources, Settings, StudySpec

BASE = "base"


@dataclass
class Phase:
    model: str
    unit: str
    name: str  # "train" or an evaluation block's name
    method: str
    seed: int
    out: Path  # the unit folder, as the study names it (relative paths stay relative)
    method_config: str | None
    tasks: list[str]
    langs: list[str]
    settings: Settings
    resources: Resources
    limit: int | None = None
    chunk_size: int | None = None
    drift_ref: Path | None = None
    drift_tasks: list[str] = field(default_factory=list)
    options: dict = field(default_factory=dict)  # method config fields over method_config (harness run --set)
    deps: list[str] = field(default_factory=list)  # ids of the phases that must finish first
    done: bool = False

    @property
    def id(self) -> str:
        return f"{model_folder(self.model)}/{self.unit}/{self.name}"

    @property
    def kind(self) -> str:
        return TRAIN if self.name == TRAIN else "evaluate"

    def command(self, threads: int) -> list[str]:
        """The equivalent `harness train|run` command line (recorded in phases.json and results.json)."""
        common = ["--method", self.method, "--model", self.model, "--seed", str(self.seed), "--threads", str(threads)]
        if self.method_config:
            common += ["--method-config", self.method_config]
        for option in set_options(self.options):
            common += ["--set", option]
        select = ["--tasks", ",".join(self.tasks)] + (["--langs", ",".join(self.langs)] if self.langs else [])
        if self.kind == TRAIN:
            return ["harness", "train", *common, *select, *self.settings.flags()]
        args = ["harness", "run", *common, *select]
        args += ["--limit", str(self.limit)] if self.limit else []
        args += self.settings.flags() + (["--chunk-size", str(self.chunk_size)] if self.chunk_size else [])
        args += ["--output", str(self.out)] + (["--drift-ref", str(self.drift_ref)] if self.drift_ref else [])
        return args


@dataclass
class Unit:
    model: str
    name: str
    entry: MethodEntry
    seed: int
    out: Path
    phases: list[Phase]
    stale: str = ""  # its results were trained with another config than the study's recipe gives today (what changed)

    @property
    def key(self) -> str:
        return f"{model_folder(self.model)}/{self.name}"


def set_options(options: dict) -> tuple[str, ...]:
    """A method entry's `options` as `harness run --set` values (KEY=VALUE, the value as YAML reads it back)."""
    return tuple(f"{k}={json.dumps(v) if not isinstance(v, str) else v}" for k, v in options.items())


def model_folder(model: str) -> str:
    """A model's folder name in the study's output (as `harness run`'s default output names it)."""
    return Path(model).name if Path(model).exists() else model.replace("/", "_")


def drift_capable(tasks: list[str]) -> list[str]:
    """The drift-capable tasks among `tasks` (groups expanded): their hook declares `drift_capable`."""
    from tasks import expand_groups, task_class

    return [name for name, _ in expand_groups([t for t in tasks if not t.startswith("lmeval:")])
            if task_class(name).drift_capable]


def build_units(spec: StudySpec) -> list[Unit]:
    """Every unit of the study, in the study's order (models, then methods, then seeds), with its phases."""
    blocks = {b.name: b for b in spec.evaluation}
    drift = {b.name: drift_capable(b.tasks) for b in spec.evaluation}
    units: list[Unit] = []
    for model in spec.all_models():
        root = Path(spec.output) / model_folder(model)
        entries = [m for m in spec.methods if model in spec.entry_models(m)]
        base_units = {b: m.unit_name(s) for m in entries if m.method == BASE and not m.not_run
                      for s in m.seeds[:1] for b in (m.evaluation or list(blocks))}
        for m in entries:
            for seed in m.seeds:
                name = m.unit_name(seed)
                out = root / name
                phases: list[Phase] = []
                if not m.not_run and m.method != BASE:
                    phases.append(Phase(model, name, TRAIN, m.method, seed, out, m.method_config, spec.train.tasks,
                                        spec.train.langs, spec.settings, spec.resources.train, options=m.options))
                for bname in ([] if m.not_run else m.evaluation or list(blocks)):
                    phases.append(_eval_phase(spec, m, blocks[bname], model, name, seed, out, phases, drift[bname],
                                              base_units.get(bname)))
                units.append(Unit(model, name, m, seed, out, phases))
    return units


def _eval_phase(spec: StudySpec, m: MethodEntry, block: Block, model: str, unit: str, seed: int, out: Path,
                before: list[Phase], drift: list[str], base_unit: str | None) -> Phase:
    phase = Phase(model, unit, block.name, m.method, seed, out, m.method_config, block.tasks, block.langs,
                  spec.unit_settings(m), spec.resources.evaluate, block.limit, block.chunk_size, drift_tasks=drift,
                  options=m.options, deps=[p.id for p in before if p.name == TRAIN])
    if drift and m.method != BASE:
        if base_unit is None:
            raise HarnessError(f"study: block {block.name!r} scores drift ({', '.join(drift)}) against the base "
                               f"model's answers: add `- {{method: base, name: base}}` to methods, evaluated on it")
        phase.deps.append(f"{model_folder(model)}/{base_unit}/{block.name}")
        phase.drift_ref = out.parent / base_unit
    return phase


def eval_done(phase: Phase) -> bool:
    """Whether the block's results in the unit folder are complete (packed samples count as they are)."""
    from tasks import expand_groups

    path = results_file(phase.out)
    results = read_results(path) if path.is_file() else None
    if results is None or results["method"].get("name") != phase.method or results.get("seed") != phase.seed:
        return False
    selected: set[str] = set()
    for name, _ in expand_groups(phase.tasks):
        entry = results["tasks"].get(name)
        if entry is None or entry.get("limit", results.get("limit")) != phase.limit:
            return False
        samples = samples_path(phase.out, name, entry)
        if not samples.exists():
            samples = samples.with_name(samples.name + ".gz")  # packed after results.json named the plain file
        if not samples.exists() or (entry.get("samples_sha256") and samples_sha256(samples) != entry["samples_sha256"]):
            return False
        if name in phase.drift_tasks and read_drift(phase.out, name) is None:
            return False
        selected |= set(entry.get("config", {}).get("selected") or [])
    return set(phase.langs) <= selected


def train_done(unit: Unit, phase: Phase) -> bool:
    """Training is done when nothing of the unit needs the artifact any more, or the recorded one is cached."""
    evals = [p for p in unit.phases if p.kind != TRAIN]
    if evals and all(p.done for p in evals):
        return True
    from harness.training.artifacts import MANIFEST

    rec = read_phases(unit.out).get(TRAIN, {})
    return bool(rec.get("artifact_path")) and (Path(rec["artifact_path"]) / MANIFEST).exists()


def stale_reason(unit: Unit) -> str:
    """What differs between the config a trained unit's results.json recorded and the one the study's recipe
    (method_config + options over the method's current defaults) gives today; "" when current or not comparable."""
    from mt_harness.staleness import changed_fields, expected_variant

    train = next((p for p in unit.phases if p.kind == TRAIN), None)
    path = results_file(unit.out)
    results = read_results(path) if train is not None and path.is_file() else None
    if results is None:
        return ""
    from methods import load_method_config

    exp = expected_variant(train.method, train.method_config, None, set_options(train.options), load_method_config)
    if exp is None:
        return ""
    current, fields, expected = exp
    return changed_fields(results["method"], current, fields, expected.variant)


def plan(spec: StudySpec, rerun_stale: bool = False, only: list[str] | None = None) -> list[Unit]:
    """The study's units with every phase's `done` filled in from the results on disk. A trained unit whose results
    were trained with another config than its recipe gives today is marked `stale`; with `rerun_stale` all its
    phases are to do (the driver moves the old results aside once the new artifact is trained). `only`: unit names
    (e.g. landermt-s0) that `rerun_stale` applies to (default: every unit)."""
    units = build_units(spec)
    for unit in units:
        for p in unit.phases:
            if p.kind != TRAIN:
                p.done = eval_done(p)
        for p in unit.phases:
            if p.kind == TRAIN:
                p.done = train_done(unit, p)
        unit.stale = stale_reason(unit) if unit.phases else ""
        if unit.stale and rerun_stale and (not only or unit.name in only):
            for p in unit.phases:
                p.done = False
    return units
