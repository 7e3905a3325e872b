"""`lora`: LoRA adapters (peft) trained on parallel data."""

from __future__ import annotations

from harness.method import Artifact, Method, TrainContext
from methods.lora.config import LoRAConfig
from methods.lora.train import train_lora


class LoRAMethod(Method):
    name = "lora"
    Config = LoRAConfig
    description = "LoRA adapters (peft; r/alpha/targets configurable) on reference translations"

    def train(self, cfg: LoRAConfig, ctx: TrainContext) -> Artifact:
        return train_lora(cfg, ctx, self.name)
