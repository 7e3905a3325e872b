"""Configuration of `lms`: Language-Specific Matrix Synthesis + Fuse Distillation (Xu et al., EMNLP 2023).

Fields marked [choice] are ours where the paper is silent or does not apply to an LLM: named entries of
methods/lms/README.md, "Choices where the paper is silent".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from harness.training.data import TrainDataConfig
from harness.training.trainer import TrainConfig

# every ALMA human-written direction that has data once FLORES is excluded: several languages, so the
# language-specific matrices have something to separate. ALMA's is-en file is exactly FLORES dev + devtest
# (2009 lines), so the contamination guard leaves no Icelandic pair (add is-en/en-is with exclude_flores: false
# only when FLORES is not evaluated)
ALMA_PAIRS = ["cs-en", "en-cs", "de-en", "en-de", "ru-en", "en-ru", "zh-en", "en-zh"]


@dataclass
class LMSConfig:
    """Low-rank language-specific deltas W + V[src]·F[tgt] on every MLP linear, plus a shared route V[sh]·F[sh]
    trained by Fuse Distillation (CE on both routes + symmetric KL between them)."""

    data: TrainDataConfig = field(default_factory=lambda: TrainDataConfig(pairs=list(ALMA_PAIRS)))  # training pairs;
    # the languages of the loaded examples are the rows of V and F (any other language: the shared route)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(lr=2e-4))  # optimisation; with the base frozen
    # only the small V/F matrices train, so a LoRA-like lr (the paper trains everything from scratch at 5e-4)
    rank: int = 16  # d, inner dimension of V (out × d) and F (d × in); paper: 32 (IWSLT), 4/16/64 (OPUS-100)
    synthesis: Literal["pair", "language"] = "pair"  # pair: ΔW = V[src]·F[tgt] (paper default for MT);
    # language: ΔW = V[l]·F[l] with l chosen by `language_key`
    language_key: Literal["src", "tgt"] = "tgt"  # language-wise only: which language of the pair keys both matrices.
    # tgt: a decoder-only layer serves the generated language (the paper's code keys on src) [choice: language key]
    init_std: float = 0.01  # V ~ N(0, init_std²) (paper/code: std 0.01); F = 0, so every route starts as the base model
    fuse_distillation: bool = True  # FD: a second forward through the shared route + symmetric KL; false = plain LMS
    fd_weight: float = 1.0  # weight of the symmetric KL (paper: 1); loss = (CE_pair + CE_shared)/2 + fd_weight·KL
    eval_route: Literal["shared", "pair"] = "shared"  # evaluation: shared = "LMS+FD-Share" (the paper's default,
    # W + V[sh]F[sh] for every prompt); pair = "LMS+FD-LS" (translation requests use their pair's route, other
    # prompts the shared one). Part of the artifact key: evaluating the other route trains again
    train_base: bool = False  # false: base weights frozen, only V/F train (PEFT-style, our LLM adaptation, the
    # default); true: every weight trains too, as in the paper's from-scratch NMT setting (artifact = full weights)
    mlp_name: str = "mlp"  # attribute name of the MLP block inside each decoder layer (Llama/Qwen/Gemma/GPT-2/BLOOM)
    targets: list[str] = field(default_factory=list)  # names of the MLP's linears to wrap; empty = every nn.Linear
    # / Conv1D directly inside each MLP block (gate/up/down_proj, c_fc/c_proj, dense_h_to_4h/dense_4h_to_h)

    def validate(self, where: str) -> None:
        from harness.errors import HarnessError

        if self.rank < 1 or self.init_std <= 0 or self.fd_weight < 0:
            raise HarnessError(f"{where}: rank must be >= 1, init_std > 0 and fd_weight >= 0")
        if not self.fuse_distillation and self.eval_route == "shared":
            raise HarnessError(f"{where}: eval_route shared needs fuse_distillation: true (without FD the shared "
                               f"route never trains); set eval_route: pair for plain LMS")
