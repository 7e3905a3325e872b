"""Configuration of `sft`: full fine-tuning on reference translations."""

from __future__ import annotations

from dataclasses import dataclass, field

from harness.training.data import TrainDataConfig
from harness.training.trainer import TrainConfig


@dataclass
class SFTConfig:
    """Full fine-tuning (every weight trains) on (FLORES-style prompt, reference translation) pairs."""

    data: TrainDataConfig = field(default_factory=TrainDataConfig)  # which parallel data, which directions
    train: TrainConfig = field(default_factory=TrainConfig)  # optimisation (lr 2e-5, cosine, batch 8, ...)
