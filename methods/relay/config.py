"""Configuration of `relay` (Relay Decoding, Fu et al., arXiv 2405.02933).

Fields marked [choice] are ours where the paper is silent (named entries of methods/relay/README.md,
"Choices where the paper is silent"); they are config so that they can be ablated. Model names: a registry
name (`harness ls models`), a local folder or a hub id; the string `{model}` stands for the run's `--model`
(the anchor the leaderboard compares the relay with).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from harness.config import added_option
from harness.errors import HarnessError
from harness.training.data import TrainDataConfig
from harness.training.trainer import TrainConfig


@dataclass
class Composition:
    """One source LLM -> target LLM relay; it serves (and trains on) the translation directions in `pairs`."""

    pairs: list[str]  # directions this relay translates, e.g. [de-en]
    source: str  # the LLM that reads the source sentence (knows the source language)
    target: str  # the LLM that writes the translation (knows the target language)


@dataclass
class TargetLoRA:
    """The "+ target fine-tuning" variant: peft LoRA on the target LLM, trained with the same loss."""

    r: int = 16  # adapter rank
    alpha: int = 32  # scale = alpha / r
    dropout: float = 0.05
    targets: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])


def _default_relays() -> list[Composition]:
    # the offline small pair: Gemma-3-270M is multilingual, SmolLM2-135M-Instruct English-centric
    return [Composition(pairs=["de-en"], source="gemma3-270m", target="{model}"),
            Composition(pairs=["en-de"], source="{model}", target="gemma3-270m")]


@dataclass
class RelayConfig:
    """Relay Decoding: frozen LLMs joined by a trained map from source hidden states to target embeddings."""

    relays: list[Composition] = field(default_factory=_default_relays)  # one map per composition
    data: TrainDataConfig = field(default_factory=TrainDataConfig)  # parallel data; each relay uses its pairs
    # [choice: optimisation]
    train: TrainConfig = field(default_factory=lambda: TrainConfig(lr=1e-4, batch_size=8, max_length=256))
    map: Literal["linear", "xattn"] = "linear"  # linear (paper) or learned queries cross-attending (appendix)
    xattn_queries: int = 32  # xattn: number of soft tokens
    xattn_heads: int = 4  # xattn: attention heads (must divide the target hidden size)
    # which entry of the source model's `hidden_states` is mapped: an int indexes it (-1 = last layer's output), a
    # float in (0, 1) is a fraction of the source model's depth (0.5 = middle; train.source_layer). 0.5 was chosen by
    # the FLORES-dev ablation (README "Ablations"; -1 until then: the output head's space) [choice: layer]
    layer: int | float = 0.5
    # the source model's input (plain text, its tokenizer's BOS added); the whole sequence is mapped
    # [choice: source prompt]
    source_prompt: str = "####[{src_name}]: {source} ####[English]:"
    # plain text after the soft tokens, names the target language [choice: target prompt]
    target_prompt: str = "####[{tgt_name}]:"
    # RMS-normalise source states before the map (parameter-free) [choice: source normalisation]
    normalize_source: bool = True
    loss_on_eos: bool = True  # the target's EOS is a training target (so generation learns to stop) [choice: EOS]
    target_lora: TargetLoRA | None = None  # set to enable the "+ target fine-tuning" variant
    # native (the default since the FLORES-dev ablation, README "Ablations"): the source LLM reads the sentence alone
    # and the tags are target-side text around the soft tokens, "####[{src_name}]: <soft tokens> ####[{tgt_name}]:"
    # (the paper's prompt generator as we read it); mapped (the default before, kept as the legacy value so runs
    # trained with it read as stale): the tags are in the source prompt, read by the source LLM and mapped
    # [choice: tags]
    tags: Literal["mapped", "native"] = added_option("native", legacy="mapped")
    # evaluation only, never part of the artifact key: "shuffled_source" = the mechanism check's control, each
    # translation line decoded from another line's source states (same artifact, same prompts); see README
    # "Mechanism check". Left out of hashes and records while "none" (harness.config.added_option)
    control: Literal["none", "shuffled_source"] = added_option("none")

    def validate(self, where: str) -> None:
        if not self.relays:
            raise HarnessError(f"{where}.relays: give at least one composition (pairs, source, target)")
        seen: dict[str, int] = {}
        for i, comp in enumerate(self.relays):
            if not comp.pairs:
                raise HarnessError(f"{where}.relays[{i}].pairs: list the directions this relay serves, e.g. [de-en]")
            for p in comp.pairs:
                if p in seen:
                    raise HarnessError(f"{where}.relays[{i}].pairs: {p} is already served by relays[{seen[p]}]")
                if p not in self.data.pairs:
                    raise HarnessError(f"{where}.relays[{i}].pairs: {p} is not in data.pairs {self.data.pairs} "
                                       f"(the relay would have nothing to train on)")
                seen[p] = i
        for key in ("source_prompt",):
            if "{source}" not in getattr(self, key):
                raise HarnessError(f"{where}.{key}: must contain {{source}}")
        if self.tags not in ("mapped", "native"):
            raise HarnessError(f"{where}.tags: {self.tags!r} must be 'mapped' or 'native'")
        if self.control not in ("none", "shuffled_source"):
            raise HarnessError(f"{where}.control: {self.control!r} must be 'none' or 'shuffled_source'")
        if isinstance(self.layer, float) and not 0 < self.layer < 1:
            raise HarnessError(f"{where}.layer: {self.layer} must be an int (an index, -1 = last) or a fraction of "
                               f"the source model's depth in (0, 1), e.g. 0.5")
        if self.map == "xattn" and self.xattn_queries < 1:
            raise HarnessError(f"{where}.xattn_queries: must be >= 1")
        self.train.validate(f"{where}.train")
