"""A task's configuration, as its YAML under tasks/ states it: data source, languages, prompt and generation settings.

The request contract (harness.backends.base.Request) carries a `GenerationConfig`; the task base class
(harness.task) and the registry (tasks/__init__.py) build on the rest.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

from harness.errors import HarnessError


@dataclass
class GenerationConfig:
    """Decoding settings. Greedy when temperature == 0."""

    max_new_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    stop: list[str] = field(default_factory=list)  # cut the output at the first of these strings
    stop_plain: list[str] = field(default_factory=list)  # extra stops used only without a chat template

    def validate(self, where: str) -> None:
        if self.max_new_tokens < 1:
            raise HarnessError(f"{where}.max_new_tokens: must be >= 1")
        if self.temperature < 0:
            raise HarnessError(f"{where}.temperature: must be >= 0")


@dataclass
class PromptConfig:
    """How a document becomes a prompt. `template` uses {field} names of the document."""

    template: str
    system: str | None = None
    chat: Literal["auto", "on", "off"] = "auto"  # auto = use the model's chat template when it has one


@dataclass
class DatasetConfig:
    hub: str | None = None  # hub dataset id, used when the data directory has no local copy
    local: str | None = None  # path under the data directory
    split: str = "test"


@dataclass
class TaskConfig:
    task: str  # task name, equals the YAML file stem
    hook: str  # python module under tasks/ that implements the Task class
    description: str
    languages: list[str]
    prompt: PromptConfig
    generation: GenerationConfig
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    options: dict[str, Any] = field(default_factory=dict)  # checked against the hook's Options dataclass

    def validate(self, where: str) -> None:
        if not re.fullmatch(r"[a-z][a-z0-9_]*", self.hook):
            raise HarnessError(f"{where}.hook: {self.hook!r} must be a module name under tasks/")
        if not self.languages:
            raise HarnessError(f"{where}.languages: must list at least one language")
        dupes = {x for x in self.languages if self.languages.count(x) > 1}
        if dupes:
            raise HarnessError(f"{where}.languages: {sorted(dupes)[0]!r} is listed twice")


@dataclass
class NoOptions:
    pass
