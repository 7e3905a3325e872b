"""Configuration of `radis` (Rationale Distillation, Wu et al., ACL Findings 2025).

Fields marked [choice] are ours where the paper is silent: named entries of methods/radis/README.md,
"Choices where the paper is silent".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from harness.config import added_option
from harness.training.data import TrainDataConfig
from harness.training.trainer import TrainConfig


@dataclass
class RaDisConfig:
    """Full fine-tuning on reference ⊕ self-generated rationale, loss = NLL(translation) + λ·NLL(rationale)."""

    data: TrainDataConfig = field(default_factory=TrainDataConfig)  # which parallel data, which directions
    train: TrainConfig = field(default_factory=TrainConfig)  # optimisation: lr 2e-5, cosine [choice: optimisation]
    lam: float = 1.0  # λ, weight of the rationale NLL [choice: λ]
    rationale_prompt: Literal["continue", "explain", "explain_words"] = "continue"  # how rationales are asked
    # for (methods/radis/rationales.py PROMPTS, README.md). continue: our reading of the paper, the model continues its
    # own reply after the forced reference; explain: a second user turn asks "Explain the
    # translation above." and the answer is the rationale (joined to the reference by a blank line);
    # explain_words: as explain, asking which words correspond and why. Small models end their turn after the
    # reference (continue gives empty rationales): the small and CPU recipes use explain [choice: rationale prompt]
    # where the rationale is trained (methods/radis/context.py): generation = the two-turn conversation it was
    # generated in (the default since the FLORES-dev ablation: a tie on score, won by the mechanism check, README.md
    # "Ablations"); continuation = reference ⊕ rationale as one reply (the default before; for explain* not the
    # context the rationale was generated in; left out of hashes, so runs trained with it read as stale)
    # [choice: rationale training context]
    rationale_context: Literal["continuation", "generation"] = added_option("generation", legacy="continuation")
    rationale_max_new_tokens: int = 512  # bound on each rationale, greedy [choice: rationale decoding]
    rationale_batch_size: int = 16  # generation batch for rationales
    eval_keep: Literal["first_paragraph", "first_line"] = "first_line"  # what the translation tasks keep of an
    # output; first_line also cuts a rationale that follows after one newline or a same-line "Note:" marker

    def validate(self, where: str) -> None:
        from harness.errors import HarnessError

        if self.rationale_context not in ("continuation", "generation"):
            raise HarnessError(f"{where}.rationale_context: {self.rationale_context!r} must be 'continuation' or "
                               f"'generation'")
        if self.lam < 0 or self.rationale_max_new_tokens < 1:
            raise HarnessError(f"{where}: lam must be >= 0 and rationale_max_new_tokens >= 1")
