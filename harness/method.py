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

from harness.backends.hf import BackendConfig, HFBackend, load_model_and_tokenizer
from harness.models import ResolvedModel


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
class TrainContext:
    """What every trainer gets besides its own config."""

    model: ResolvedModel
    data: Any  # harness.data.DataSource
    out_dir: Path  # where the artifact goes
    eval_tasks: list[Any] = field(default_factory=list)  # loaded tasks the artifact will be scored on
    seed: int = 0
    backend: BackendConfig = field(default_factory=BackendConfig)
    allow_overlap: bool = False  # drop train/test overlap instead of refusing to train


class Method:
    name: ClassVar[str]
    Config: ClassVar[type]
    description: ClassVar[str] = ""

    def train(self, cfg: Any, ctx: TrainContext) -> Artifact:
        raise NotImplementedError

    def check_run(self, cfg: Any, tasks: list, lm_tasks: list, backend_kind: str, model: ResolvedModel) -> None:
        """Refuse, before any training or generation, a run this method cannot serve (one-line HarnessError).

        Default: a method with its own `backend()` (a composite of several models, say) cannot be served by
        vLLM, whose backend only knows base weights, full weights and LoRA adapters."""
        if backend_kind == "vllm" and type(self).backend is not Method.backend:
            from harness.errors import HarnessError

            raise HarnessError(f"--backend vllm: method {self.name} generates through its own backend "
                               f"({type(self).__module__}), which vLLM cannot load; use --backend transformers")

    def prepare_task(self, task, artifact: Artifact) -> None:
        """Adjust how a task reads this artifact's outputs before evaluation (default: nothing).

        RaDis uses it to extract the translation from outputs that continue with a rationale.
        """

    def backend(self, artifact: Artifact, model: ResolvedModel, cfg: BackendConfig):
        """A generation backend for the artifact; default: base weights (+ a peft adapter or full weights)."""
        if artifact.kind == "full":
            hf_model, tok = load_model_and_tokenizer(artifact.path, cfg)
        elif artifact.kind == "adapter":
            hf_model, tok = load_model_and_tokenizer(model.path, cfg, adapter=artifact.path)
        else:
            hf_model, tok = load_model_and_tokenizer(model.path, cfg)
        return HFBackend(hf_model, tok, cfg)
