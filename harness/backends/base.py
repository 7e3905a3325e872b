"""The request/result contract shared by every backend (transformers, vLLM, a method's own), and what a backend
declares it can do."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from harness.task_config import GenerationConfig


@dataclass
class Request:
    id: str
    messages: list[dict]
    gen: GenerationConfig
    chat: Literal["auto", "on", "off"] = "auto"
    assistant_prefix: str = ""
    seed: int = 0
    # (source, target) language of a translation request, from the document's `src`/`tgt` fields; None for
    # other prompts. Backends may ignore it; LMS routes each request through its language pair's modules.
    langs: tuple[str, str] | None = None
    doc: dict | None = None  # the task document, for backends that build their own inputs (relay, xbridge)
    round: int = 0  # which round of a multi-round task (MT-Bench's second turn; XBridge's decoder round) this is

    @property
    def pair(self) -> str:
        """"src-tgt" of a translation request (LANDeRMT's route key), else ""."""
        return f"{self.langs[0]}-{self.langs[1]}" if self.langs else ""


@dataclass
class Generation:
    text: str  # decoded continuation, cut at the first stop string (the stop string is not included)
    prompt: str  # the exact rendered prompt
    n_prompt_tokens: int
    n_new_tokens: int
    finish: Literal["stop", "eos", "length"]


def cut_at_stop(text: str, stops: list[str]) -> tuple[str, bool]:
    """Cut `text` at the earliest stop string. Returns (text, whether a stop string was found)."""
    cut = min((i for s in stops if s and (i := text.find(s)) >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


@dataclass(frozen=True)
class Capabilities:
    """What a backend can do, declared as the class attribute `capabilities` and checked once, before any work,
    by `harness.backends.factory.check_serves` (an object that declares nothing can only generate)."""

    generate: bool = True  # `generate(requests, progress) -> list[Generation]`
    loglik: bool = False  # `loglikelihood(groups, progress)`: multiple-choice tasks
    hf_weights: bool = False  # `.model`/`.tok`/`.cfg`: one transformers causal LM, its tokenizer and BackendConfig
    #                           (drift scores with them; the lm-eval bridge wraps them in HFLM)
