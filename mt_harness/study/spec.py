"""A study's YAML (`harness study STUDY.yaml`), read strictly: unknown or duplicate keys, wrong types and dangling
names are one-line errors naming the file and the field.

    title: Science run                  # the COST.md heading
    output: results/science             # units go to <output>/<model>/<unit>/; leaderboard.* and COST.md to <output>
    models: [smollm2-135m-instruct]
    settings: {threads: 1}              # backend settings of every phase (harness run's --dtype, --batch-size, ...)
    train: {tasks: [flores], langs: [de-en, en-de]}    # what training must not overlap (harness train --tasks)
    evaluation:                         # blocks: one phase each per unit, in this order
      - {name: flores, tasks: [flores], langs: [de-en, en-de], limit: 200}
      - {name: mtbench, tasks: [mtbench]}
    methods:                            # units, in this order (the report's rows, the scheduling priority)
      - {method: base, name: base}
      - {method: sft, seeds: [0, 1], method_config: methods/sft/recipes/cpu-150.yaml}   # units sft-s0, sft-s1
      - {method: relay, evaluation: [flores], settings: {batch_size: 8}}
      - {method: relay, name: relay-layer8, options: {layer: 8, train.lr: 1.0e-4}}      # an ablation arm
      - {method: base, name: base, models: [gemma3-270m], evaluation: [flores]}       # another model's row
      - {method: xbridge, not_run: "no NMT encoder-decoder is reachable offline"}
    resources: {train: {cpus: 1, gpus: 0}, evaluate: {cpus: 1, gpus: 0}}   # per Ray task
    workers: 2                          # local executor: worker processes (CLI --workers overrides)
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from harness.config import from_dict, load_yaml, to_dict
from harness.errors import HarnessError

TRAIN = "train"  # the training phase's name; evaluation blocks may not use it


@dataclass
class Settings:
    """Backend settings of a phase: the `harness run` flags of the same names."""

    dtype: str = "auto"
    device: str = "auto"
    batch_size: int = 32
    scheduler: str = "auto"
    decode_attention: Literal["sdpa", "matmul"] = "sdpa"  # --decode-attention (matmul: not bit-identical in bf16)
    prepack: Literal["auto", "all", "off"] = "auto"  # --prepack (auto: bit-identical; all: fp32 too, not identical)
    trust_remote_code: bool = False

    def flags(self) -> list[str]:
        """The CLI flags of the settings that differ from the defaults (for the recorded command)."""
        out: list[str] = []
        for f in fields(self):
            value = getattr(self, f.name)
            if value != f.default:
                flag = "--" + f.name.replace("_", "-")
                out += [flag] if isinstance(value, bool) else [flag, str(value)]
        return out


@dataclass
class Block:
    """One evaluation block: one `harness run` per unit."""

    name: str
    tasks: list[str]
    langs: list[str] = field(default_factory=list)
    limit: int | None = None
    chunk_size: int | None = None  # harness run --chunk-size (default 64)

    def validate(self, where: str) -> None:
        if not self.name or self.name == TRAIN or "/" in self.name:
            raise HarnessError(f"{where}.name: {self.name!r} is not a usable block name (not empty, not "
                               f"{TRAIN!r}, no '/')")
        if not self.tasks:
            raise HarnessError(f"{where}.tasks: give at least one task (see `harness ls tasks`)")
        if self.limit is not None and self.limit < 1:
            raise HarnessError(f"{where}.limit: must be >= 1")
        if self.chunk_size is not None and self.chunk_size < 1:
            raise HarnessError(f"{where}.chunk_size: must be >= 1")


@dataclass
class TrainTasks:
    """The tasks (and languages) the artifacts will be evaluated on: training pairs overlapping them are refused."""

    tasks: list[str] = field(default_factory=lambda: ["flores"])
    langs: list[str] = field(default_factory=list)


@dataclass
class Resources:
    cpus: float = 1
    gpus: float = 0

    def validate(self, where: str) -> None:
        if self.cpus < 1 or self.gpus < 0:
            raise HarnessError(f"{where}: cpus must be >= 1 and gpus >= 0")


@dataclass
class PhaseResources:
    """What each Ray task asks for (the local executor runs `threads` torch threads per worker instead)."""

    train: Resources = field(default_factory=Resources)
    evaluate: Resources = field(default_factory=Resources)


@dataclass
class MethodEntry:
    """A method's units: one per seed, in folder `name` ("{method}-s{seed}" unless given)."""

    method: str
    name: str = ""
    seeds: list[int] = field(default_factory=lambda: [0])
    method_config: str | None = None  # YAML merged over the method's defaults (harness run --method-config)
    options: dict[str, Any] = field(default_factory=dict)  # fields over method_config, dotted (harness run --set)
    evaluation: list[str] | None = None  # block names (default: every block)
    settings: dict[str, Any] = field(default_factory=dict)  # over the study's settings, for its evaluations
    not_run: str = ""  # why the method is deliberately not run (written to its not_run.json)
    models: list[str] | None = None  # the models its units run on (default: the study's `models`)

    def unit_name(self, seed: int) -> str:
        template = self.name or ("{method}" if self.not_run else "{method}-s{seed}")
        return template.format(method=self.method, seed=seed)

    def validate(self, where: str) -> None:
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise HarnessError(f"{where}.seeds: give distinct seeds, e.g. [0, 1, 2]")
        if len(self.seeds) > 1 and self.name and "{seed}" not in self.name:
            raise HarnessError(f"{where}.name: {self.name!r} must contain {{seed}} for several seeds")
        if self.not_run and ("\n" in self.not_run or len(self.seeds) > 1):
            raise HarnessError(f"{where}.not_run: one line, for one unit")
        if self.models is not None and (not self.models or len(set(self.models)) != len(self.models)):
            raise HarnessError(f"{where}.models: give distinct models, or leave it out for the study's models")
        if self.method_config and not Path(self.method_config).is_file():
            raise HarnessError(f"{where}.method_config: {self.method_config}: file not found")


@dataclass
class StudySpec:
    output: str
    models: list[str]
    evaluation: list[Block]
    methods: list[MethodEntry]
    title: str = "Study"
    train: TrainTasks = field(default_factory=TrainTasks)
    settings: Settings = field(default_factory=Settings)
    threads: int = 1  # torch threads per phase (local executor; a Ray task uses its cpus)
    workers: int = 1  # local executor: phases at once
    retries: int = 2  # a phase whose worker dies (killed, out of memory) is run again this many times
    resources: PhaseResources = field(default_factory=PhaseResources)
    data_dir: str | None = None  # default: $HARNESS_DATA_DIR or ../shared/data
    leaderboard: bool = True  # rebuild <output>/leaderboard.* at the end

    def validate(self, where: str) -> None:
        if not self.models:
            raise HarnessError(f"{where}.models: give at least one model")
        if self.threads < 1 or self.workers < 1 or self.retries < 0:
            raise HarnessError(f"{where}: threads and workers must be >= 1, retries >= 0")
        names = [b.name for b in self.evaluation]
        if len(set(names)) != len(names):
            raise HarnessError(f"{where}.evaluation: block names must be distinct ({', '.join(names)})")
        units: set[tuple[str, str]] = set()
        for i, m in enumerate(self.methods):
            here = f"{where}.methods[{i}]"
            unknown = sorted(set(m.evaluation or []) - set(names))
            if unknown:
                raise HarnessError(f"{here}.evaluation: no block named {unknown[0]!r} (blocks: {', '.join(names)})")
            try:
                from_dict(Settings, {**to_dict(self.settings), **m.settings}, f"{here}.settings")
            except HarnessError as e:
                raise HarnessError(str(e)) from None
            if m.options and not m.not_run:
                _check_options(m, here)
            for seed in m.seeds:
                unit = m.unit_name(seed)
                for model in self.entry_models(m):
                    if (model, unit) in units or not unit or "/" in unit:
                        raise HarnessError(f"{here}: unit folder {unit!r} is empty, has '/' or repeats another unit's "
                                           f"of {model}; set name (e.g. '{{method}}-s{{seed}}')")
                    units.add((model, unit))

    def entry_models(self, m: MethodEntry) -> list[str]:
        return self.models if m.models is None else m.models

    def all_models(self) -> list[str]:
        """The study's models, then those only some entries name, in order of first mention."""
        out = list(self.models)
        for m in self.methods:
            out += [x for x in (m.models or []) if x not in out]
        return out

    def unit_settings(self, m: MethodEntry) -> Settings:
        return from_dict(Settings, {**to_dict(self.settings), **m.settings}, "settings")


def _check_options(m: MethodEntry, where: str) -> None:
    """Unknown or mistyped `options` are an error before any phase runs (loaded as `harness run --set` loads them)."""
    from methods import get_method, load_method_config

    try:
        load_method_config(get_method(m.method), m.method_config, None, m.options)
    except HarnessError as e:
        raise HarnessError(f"{where}.options: {e}") from None


def load_study(path: str | Path, output: str | None = None) -> StudySpec:
    """The study in `path` (strict keys); `output` replaces its output folder (e.g. a copy of the results)."""
    data = load_yaml(path)
    if output is not None:
        data["output"] = str(output)
    return from_dict(StudySpec, data, str(path))
