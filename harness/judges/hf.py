"""A local `transformers` chat model as judge (registry name, local directory or hub id).

Generation goes through the transformers backend built by harness.backends.factory (the same batched decoder
as evaluation) with the judge's own chat template. Identity = resolved model identity (name, source, weights hash).
"""

from __future__ import annotations

from harness.backends.base import Request
from harness.backends.factory import build_backend
from harness.judges.base import JudgeSettings
from harness.loading import BackendConfig
from harness.task_config import GenerationConfig


class HFJudge:
    kind = "hf"

    def __init__(self, model: str, settings: JudgeSettings, backend_cfg: BackendConfig | None = None):
        from harness.models import resolve_model

        self.settings = settings
        self.resolved = resolve_model(model)
        self.backend = build_backend("transformers", None, None, self.resolved, backend_cfg or BackendConfig())

    def identity(self) -> dict:
        ident = self.resolved.identity()
        return {"kind": self.kind, "model": ident.get("name"), "source": ident.get("source"),
                "weights_sha256": ident.get("weights_sha256"), "dtype": self.backend.settings()["dtype"]}

    def complete(self, conversations: list[list[dict]], seeds: list[int], progress=None) -> list[str]:
        gen = GenerationConfig(max_new_tokens=self.settings.max_new_tokens, temperature=self.settings.temperature)
        reqs = [Request(id=str(i), messages=msgs, gen=gen, chat="auto", seed=seed)
                for i, (msgs, seed) in enumerate(zip(conversations, seeds))]
        return [g.text for g in self.backend.generate(reqs, progress=progress)]
