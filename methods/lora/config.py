"""Configuration of `lora`: low-rank adapters trained with peft."""

from __future__ import annotations

from dataclasses import dataclass, field

from harness.training.data import TrainDataConfig
from harness.training.trainer import TrainConfig


@dataclass
class LoRAConfig:
    """LoRA (peft) on the attention projections; the base weights stay frozen."""

    data: TrainDataConfig = field(default_factory=TrainDataConfig)  # which parallel data, which directions
    train: TrainConfig = field(default_factory=lambda: TrainConfig(lr=2e-4))  # optimisation; LoRA takes a 10x higher lr
    r: int = 16  # adapter rank
    alpha: int = 32  # scaling numerator (scale = alpha / r)
    dropout: float = 0.05  # dropout on the adapter input
    # names of the linear modules that get adapters
    targets: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])

    def validate(self, where: str) -> None:
        from harness.errors import HarnessError

        if self.r < 1 or not self.targets:
            raise HarnessError(f"{where}: r must be >= 1 and targets non-empty")
