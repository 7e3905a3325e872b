"""Configuration of `xbridge`: NMT encoder -> frozen LLM -> NMT decoder, three training stages.

Provenance tags: [CODE] = the official repository ictnlp/XBridge, [PAPER] = the paper's text, [choice] = ours
where both are silent (named entries of methods/xbridge/README.md, "Choices where the paper is silent"). Where
the code and the paper disagree (loss weights, map widths) the code is the default and the paper a documented
option (README, "Where the official code and the paper disagree").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from harness.errors import HarnessError
from harness.languages import flores_code
from harness.training.trainer import TrainConfig

# [CODE] the stage-2/3 prompt; {q} is the raw (non-English) query, which is ALSO fed to the NMT encoder
ALPACA = ("Below is an instruction that describes a task. Write a response that appropriately completes the "
          "request.\n\n### Instruction:\n{q}\n\n### Response: Let's think step by step.")

# loss weights (lambda_llm, lambda_dec, lambda_ot) per stage; a term is only active in the stages that use it
LOSS_WEIGHTS = {
    # [CODE] stage-1 README command: --dec_lambda 1.0 --ot_lambda 6.0; stage-2/3 commands pass nothing -> defaults
    "code": {1: (1.0, 1.0, 6.0), 2: (1.0, 0.2, 1.0), 3: (1.0, 0.2, 1.0)},
    # [PAPER] lambda1 = lambda2 = 1.0, lambda3 = 6.0 whenever the term is active
    "paper": {1: (1.0, 1.0, 6.0), 2: (1.0, 1.0, 6.0), 3: (1.0, 1.0, 6.0)},
}
STAGE_LOSSES = {1: ("llm", "dec", "ot"), 2: ("llm",), 3: ("dec", "ot")}  # [CODE + PAPER]


@dataclass
class Stage1Data:
    """Trilingual (x, en, y) tuples: the encoder reads x, the LLM learns to write en, the decoder writes y.

    `flores_dev`: FLORES-200 dev (multi-parallel human translations, disjoint from the devtest the
    harness evaluates on), `<data dir>/flores/flores200_dev_from_alma/<code>.dev` (de cs ru zh is en),
    or `openlanguagedata/flores_plus` split `dev` from the hub. `opus100`: `Helsinki-NLP/opus-100`
    (hub only, config `en-xx`); its pairs give (x, en, x) and (en, en, x) tuples: the paper's third
    side (y made by NLLB-200-3.3B) is not synthesised here.
    """

    source: Literal["flores_dev", "opus100"] = "flores_dev"
    languages: list[str] = field(default_factory=lambda: ["de", "cs", "ru", "zh"])  # non-English languages
    # x-y directions (x = encoder side, y = decoder side); empty = every ordered pair of distinct
    # `languages` (the paper's 72 = 9 x 8 non-English directions) plus x-en and en-x for each language
    directions: list[str] = field(default_factory=list)
    max_per_direction: int | None = 200  # seeded random sample per direction (None = all)

    def validate(self, where: str) -> None:
        for lang in self.languages:
            flores_code(lang)
        for d in self.directions:
            x, _, y = d.partition("-")
            if not y:
                raise HarnessError(f"{where}.directions: {d!r} must look like de-fr (encoder side - decoder side)")
            flores_code(x), flores_code(y)


@dataclass
class Stage23Data:
    """Instruction data for stages 2 and 3: (query q in language l, English response, response in l).

    `flores_dev` (small offline runs) [choice: stage-2/3 data offline]: q = a FLORES dev sentence in l, the English
    response is its English dev line and the l-response the dev line of `response_language` (default: l itself);
    a translation-shaped instruction set, a proxy for the paper's math/summarisation data.
    `hub`: any hub dataset with the three fields named below (e.g. the paper's MultilingualMath from
    LayAlign, or XL-Sum capped per language), split `split`.
    """

    source: Literal["flores_dev", "hub"] = "flores_dev"
    languages: list[str] = field(default_factory=lambda: ["de", "cs", "ru", "zh"])
    response_language: str | None = None  # flores_dev: language of the decoder-side response (None = q's language)
    max_per_language: int | None = 200
    hub_id: str = ""  # source hub: dataset id
    hub_config: str | None = None
    split: str = "train"
    query_field: str = "query"  # hub: the non-English instruction (+ input)
    response_en_field: str = "response_en"  # hub: the English response (LLM target)
    response_field: str = "response"  # hub: the response in the query's language (decoder target)
    language_field: str = "lang"  # hub: language code of the row (short or FLORES-200 code)

    def validate(self, where: str) -> None:
        for lang in self.languages:
            flores_code(lang)
        if self.source == "hub" and not self.hub_id:
            raise HarnessError(f"{where}.hub_id: required when source is hub")


@dataclass
class XBridgeConfig:
    """XBridge (Bu & Feng, ACL 2026): NMT encoder -> Map_enc (+ end boundary) -> frozen LLM ->
    penultimate-layer states -> Map_dec -> the NMT decoder's cross-attention."""

    nmt_model: str = "facebook/nllb-200-distilled-600M"  # local folder or hub id of an M2M100ForConditionalGeneration
    llm: str | None = None  # causal LM (local folder, registry name or hub id); None = the harness --model
    language_codes: Literal["nllb", "m2m100"] = "nllb"  # deu_Latn (NLLB-200) or __de__ (M2M100) language tokens
    widths: Literal["code", "paper"] = "code"  # map widths: code = Map_enc mid 4*d_nmt, Map_dec mid 2*d_llm;
    # paper = every intermediate width d_llm ("all intermediate dimensions are aligned with the LLM hidden size")
    loss_weights: Literal["code", "paper"] = "code"  # see LOSS_WEIGHTS
    ot: Literal["relaxed", "entropic"] = "relaxed"  # relaxed = the official closed form (one-sided, RWMD);
    # entropic = Sinkhorn OT between the two norm-weighted sequences (POT, `ot_reg`, `ot_iters`) [choice: OT]
    ot_reg: float = 0.1  # entropic: regularisation of the Sinkhorn problem
    ot_iters: int = 100  # entropic: Sinkhorn iterations
    hidden_layer: int = -2  # LLM hidden_states index feeding Map_dec: -2 = output of layer L-1 [CODE]
    stages: list[int] = field(default_factory=lambda: [1, 2, 3])  # stages to train, in order (a prefix of 1,2,3)
    stage1: Stage1Data = field(default_factory=Stage1Data)
    stage23: Stage23Data = field(default_factory=Stage23Data)
    prompt: str = ALPACA  # stage-2/3 LLM prompt ({q}); stage 1 has none: [bos][Map_enc(enc(x))][sep] [CODE]
    translation_prompt: Literal["none", "instruction"] = "none"  # FLORES at evaluation: none = the stage-1
    # input (the paper scores translation after stage 1), instruction = the stage-2/3 prompt with q = source
    max_src_tokens: int = 256  # NMT encoder input cap
    max_dec_tokens: int = 256  # decoder output cap (training targets and generation)
    train1: TrainConfig = field(default_factory=lambda: TrainConfig(lr=2e-5, epochs=2, batch_size=8, grad_accum=16,
                                                                    scheduler="linear", warmup_ratio=0.0))
    train2: TrainConfig = field(default_factory=lambda: TrainConfig(lr=2e-5, epochs=3, batch_size=8, grad_accum=16,
                                                                    scheduler="linear", warmup_ratio=0.0))
    train3: TrainConfig = field(default_factory=lambda: TrainConfig(lr=2e-5, epochs=3, batch_size=8, grad_accum=16,
                                                                    scheduler="linear", warmup_ratio=0.0))

    def validate(self, where: str) -> None:
        if not self.stages or self.stages != [1, 2, 3][:len(self.stages)]:
            raise HarnessError(f"{where}.stages: {self.stages} must be [1], [1, 2] or [1, 2, 3] "
                               f"(stages build on each other)")
        if self.ot_reg <= 0 or self.ot_iters < 1:
            raise HarnessError(f"{where}: ot_reg must be > 0 and ot_iters >= 1")
        if "{q}" not in self.prompt:
            raise HarnessError(f"{where}.prompt: must contain {{q}} (the query)")
        for k in ("train1", "train2", "train3"):
            getattr(self, k).validate(f"{where}.{k}")

    def train_for(self, stage: int) -> TrainConfig:
        return getattr(self, f"train{stage}")

    def weights(self, stage: int) -> dict[str, float]:
        lam = dict(zip(("llm", "dec", "ot"), LOSS_WEIGHTS[self.loss_weights][stage]))
        return {k: (v if k in STAGE_LOSSES[stage] else 0.0) for k, v in lam.items()}
