"""`base`: the untouched model. Every gain and loss is measured against it."""

from __future__ import annotations

from dataclasses import dataclass

from harness.method import Artifact, Method, TrainContext


@dataclass
class BaseConfig:
    """No settings: the base model is evaluated as it is."""


class BaseMethod(Method):
    name = "base"
    Config = BaseConfig
    description = "the untouched base model (no training)"

    def train(self, cfg: BaseConfig, ctx: TrainContext) -> Artifact:
        return Artifact(method=self.name, kind="none", path=None, config={}, config_hash="", hash="")
