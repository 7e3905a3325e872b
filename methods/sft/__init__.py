"""`sft`: full fine-tuning on parallel data (the vanilla fine-tuning baseline)."""

from __future__ import annotations

from harness.method import Artifact, Method, TrainContext
from methods.sft.config import SFTConfig
from methods.sft.train import train_sft


class SFTMethod(Method):
    name = "sft"
    Config = SFTConfig
    description = "full fine-tuning on reference translations (ALMA human-written pairs by default)"

    def train(self, cfg: SFTConfig, ctx: TrainContext) -> Artifact:
        return train_sft(cfg, ctx, self.name)
