"""`landermt`: LANDeRMT — detect language-aware FFN neurons, fine-tune only them, routed by the language pair."""

from __future__ import annotations

from harness.loading import BackendConfig, load_model_and_tokenizer
from harness.method import Artifact, Method, TrainContext
from harness.models import ResolvedModel
from methods.landermt.config import LANDeRMTConfig
from methods.landermt.train import train_landermt


class LANDeRMTMethod(Method):
    name = "landermt"
    Config = LANDeRMTConfig
    description = "LANDeRMT: Taylor-aware language-general/specific FFN neurons, gated per pair, only they train"

    def train(self, cfg: LANDeRMTConfig, ctx: TrainContext) -> Artifact:
        return train_landermt(cfg, ctx, self.name)

    def mechanism(self, record: dict) -> str:
        from methods.landermt.report import mechanism_text

        return mechanism_text((record.get("config") or {}).get("analysis"))

    def backend(self, artifact: Artifact, model: ResolvedModel, cfg: BackendConfig):
        from methods.landermt.backend import RoutedBackend, load_routed

        hf_model, tok = load_model_and_tokenizer(model.path, cfg)
        router = load_routed(hf_model, artifact.path)
        return RoutedBackend(hf_model, tok, cfg, router)

    def backend_class(self) -> type:
        from methods.landermt.backend import RoutedBackend

        return RoutedBackend


__all__ = ["LANDeRMTMethod"]
