"""LLM judges: a local `transformers` chat model (hf) or any OpenAI-compatible HTTP endpoint (openai).

`JudgeSpec` is what the CLI collects (`--judge hf|openai`, `--judge-model`, `--judge-url`,
`--judge-key-env`, `--judge-k`, `--judge-temperature`, `--judge-max-tokens`); `make_judge`
builds the judge. Tasks that can use a judge (mtbench, safety) get it through
`harness.judges.phase`, after generation (`harness run`) or later on saved answers (`harness judge`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

from harness.errors import HarnessError
from harness.judges.base import (Judge, JudgeItem, JudgeSettings, JudgmentCache, judge_id, majority_verdict,
                                 median_verdict, parse_rating, parse_xstest_class, prompt_hash, run_judgments)

__all__ = ["JudgeSpec", "make_judge", "Judge", "JudgeItem", "JudgeSettings", "JudgmentCache", "judge_id",
           "majority_verdict", "median_verdict", "parse_rating", "parse_xstest_class", "prompt_hash", "run_judgments"]


@dataclass
class JudgeSpec:
    kind: Literal["hf", "openai"]
    model: str
    url: str | None = None
    key_env: str | None = None  # NAME of the environment variable holding the key, never the key
    k: int = 1
    temperature: float = 0.0
    max_new_tokens: int = 2048

    def validate(self) -> None:
        if self.kind not in ("hf", "openai"):
            raise HarnessError(f"--judge {self.kind!r}: use hf (local transformers model) or openai (HTTP endpoint)")
        if not self.model:
            raise HarnessError("--judge-model: give the judge model (registry name, directory, or endpoint model name)")
        if self.kind == "openai" and not self.url:
            raise HarnessError("--judge openai needs --judge-url (e.g. http://127.0.0.1:8000/v1)")
        if self.k < 1:
            raise HarnessError("--judge-k: must be >= 1")
        if self.k > 1 and self.temperature <= 0:
            raise HarnessError("--judge-k > 1 needs --judge-temperature > 0 (greedy judgments would all be identical)")
        if self.max_new_tokens < 1:
            raise HarnessError("--judge-max-tokens: must be >= 1")
        if self.key_env and not self.key_env.replace("_", "").isalnum():
            raise HarnessError(f"--judge-key-env {self.key_env!r}: give the NAME of an environment variable, not a key")

    def settings(self) -> JudgeSettings:
        return JudgeSettings(k=self.k, temperature=self.temperature, max_new_tokens=self.max_new_tokens)

    def describe(self) -> dict:
        return asdict(self)


def make_judge(spec: JudgeSpec, backend_cfg=None) -> Judge:
    spec.validate()
    if spec.kind == "hf":
        from harness.judges.hf import HFJudge

        return HFJudge(spec.model, spec.settings(), backend_cfg)
    from harness.judges.openai_http import OpenAIJudge

    return OpenAIJudge(spec.url or "", spec.model, spec.settings(), key_env=spec.key_env)
