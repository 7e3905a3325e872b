"""The method contract: a config dataclass, a trainer that produces an artifact, and a backend for it.

Methods live in `methods/<name>/` and are registered explicitly in `methods/__init__.py`.
An artifact is a folder holding the trained parts plus `artifact.json` (method, config, config
hash, base-model identity, content hash). `harness run` reuses an artifact whose config hash
matches and trains otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from harness.config import to_dict
from harness.io import stable_hash
from harness.loading import BackendConfig
from harness.models import ResolvedModel


def config_variant(cfg: Any) -> str:
    """What results.json records as the method's `variant`: the hash of its config dataclass's fields ("" when it has
    none, e.g. `base`). Runs of one config trained with other seeds share it (the artifact's config hash does not:
    it also covers the seed and the data the seed sampled); the leaderboard groups seeds by it."""
    fields = to_dict(cfg)
    return stable_hash(fields) if fields else ""


@dataclass
class Artifact:
    method: str
    kind: str  # "none" (untouched base), "adapter" (peft), "full" (weights), "composite"
    path: Path | None
    config: dict = field(default_factory=dict)
    config_hash: str = ""
    hash: str = ""  # content hash of the trained files
    report: dict = field(default_factory=dict)  # what training reports besides its config (RaDis: rationale stats)

    def describe(self) -> dict:
        out = {"kind": self.kind, "path": str(self.path) if self.path else None,
               "config_hash": self.config_hash, "hash": self.hash}
        return {**out, "report": self.report} if self.report else out


@dataclass
class TrainingPrompts:
    """The prompt supervised methods train on: `task`'s (the first translation task the run evaluates, else
    FLORES), and the `reference` task (FLORES) whose prompt is left out of artifact keys. Built by
    `tasks.training_prompts` in the application, so the core never loads a task by name."""

    task: Any
    reference: Any


@dataclass
class TrainContext:
    """What every trainer gets besides its own config."""

    model: ResolvedModel
    data: Any  # harness.data.DataSource
    out_dir: Path  # where the artifact goes
    eval_tasks: list[Any] = field(default_factory=list)  # loaded tasks the artifact will be scored on
    seed: int = 0
    backend: BackendConfig = field(default_factory=BackendConfig)
    allow_overlap: bool = False  # drop train/test overlap instead of refusing to train
    prompts: TrainingPrompts | None = None  # supervised methods' training prompt (tasks.training_prompts)


class Method:
    name: ClassVar[str]
    Config: ClassVar[type]
    description: ClassVar[str] = ""

    def train(self, cfg: Any, ctx: TrainContext) -> Artifact:
        raise NotImplementedError

    def check_run(self, cfg: Any, tasks: list, lm_tasks: list, backend_kind: str, model: ResolvedModel) -> None:
        """Refuse, before any training or generation, a run this method cannot serve (one-line HarnessError).

        Default: every phase of the run (generation, log-likelihood scoring, drift, the lm-eval bridge) must be
        something the backend `build_backend(backend_kind, self, ...)` will return can do; vLLM cannot load a
        method's own backend. A method adds its own refusals first, then calls this."""
        from harness.backends.factory import backend_class, check_serves

        check_serves(backend_class(backend_kind, self), tasks, lm_tasks)

    def prepare_task(self, task, artifact: Artifact) -> None:
        """Adjust how a task reads this artifact's outputs before evaluation (default: nothing).

        RaDis uses it to extract the translation from outputs that continue with a rationale.
        """

    def mechanism(self, record: dict) -> str:
        """The method's mechanism check in words, computed from a run's results.json `method` record (its config and
        `artifact.report`): evidence that the defining mechanism is active, or that it is not ("" = no check, or
        nothing recorded). The leaderboard shows it per row (mt_harness/mechanism.py collects it)."""
        return ""

    def backend(self, artifact: Artifact, model: ResolvedModel, cfg: BackendConfig):
        """The method's own transformers backend (a composite of several models, a routed model), for methods whose
        `backend_class()` names one; others get the standard backend of `--backend` (base weights + a peft adapter or
        full weights, or vLLM). Callers use `harness.backends.factory.build_backend`."""
        raise NotImplementedError(f"method {self.name} has no backend of its own (backend_class() is None)")

    def backend_class(self) -> type | None:
        """The class `backend()` returns (its `name` and `capabilities` are checked before anything loads), or None:
        the method is served by the standard backend of `--backend`."""
        return None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.backend is not Method.backend and cls.backend_class is Method.backend_class:
            raise TypeError(f"method class {cls.__name__} overrides backend() but not backend_class()")
