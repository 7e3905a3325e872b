"""Shared fixtures: tiny randomly initialised models of real architecture classes, built in seconds.

The tokenizer is a byte-level BPE trained on a few hundred FLORES lines of several scripts, with a
ChatML chat template, so prompts in any language round-trip and chat rendering is exercised.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parent.parent
DATA_DIR = Path(os.environ.get("HARNESS_DATA_DIR", REPO.parent / "shared" / "data")).resolve()
CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


# What the suite reads from the data folder. Under CI (`HARNESS_REQUIRE_DATA=1`, set by .ci/run) a missing
# folder or file stops the session with exit 1 instead of letting half the suite skip and pass.
REQUIRED_DATA = (
    "flores/flores200_dataset/devtest/eng_Latn.devtest",
    "flores/flores200_dataset/devtest/deu_Latn.devtest",
    "mgsm/mgsm_de.tsv",
    "mgsm/mgsm_exemplars.json",
    "gsm8k/test.jsonl",
    "mt_bench/question.jsonl",
    "safety/refusal_direction_raw/advbench.csv",
    "safety/xstest",
    "safety/xstest_completions",
    "parallel/alma_human_written/deen",
    "wmt16/eng-deu",
    "parallel/multi30k/task1_raw/test_2016_flickr.de.gz",
)


def missing_data(data_dir: Path) -> list[str]:
    return [rel for rel in REQUIRED_DATA if not (data_dir / rel).exists()]


def pytest_sessionstart(session):
    if os.environ.get("HARNESS_REQUIRE_DATA") == "1" and (missing := missing_data(DATA_DIR)):
        pytest.exit(f"HARNESS_REQUIRE_DATA=1 but the data folder {DATA_DIR} lacks {', '.join(missing)} "
                    "(set HARNESS_DATA_DIR to the shared data folder)", returncode=1)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not (DATA_DIR / "flores").is_dir():
        pytest.skip(f"shared data not found at {DATA_DIR}; set HARNESS_DATA_DIR")
    return DATA_DIR


def _training_lines() -> list[str]:
    lines = []
    devtest = DATA_DIR / "flores" / "flores200_dataset" / "devtest"
    for code in ("eng_Latn", "deu_Latn", "zho_Hans", "jpn_Jpan", "tha_Thai", "ben_Beng", "rus_Cyrl"):
        path = devtest / f"{code}.devtest"
        if path.exists():
            lines += path.read_text(encoding="utf-8").splitlines()[:150]
    return lines or ["hello world", "guten tag", "你好世界"]


def build_tokenizer(chat: bool = True):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=600, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tk.train_from_iterator(_training_lines(), trainer)
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="<pad>",
                                  eos_token="<|im_end|>" if chat else "<|endoftext|>",
                                  bos_token="<|endoftext|>")
    if chat:
        tok.chat_template = CHATML
    return tok


def build_tiny_model(arch: str, vocab_size: int):
    """Gated MLPs (gate/up/down): llama, qwen2, gemma3. Plain up/down MLPs: gpt2 (Conv1D c_fc/c_proj), bloom
    (nn.Linear dense_h_to_4h/dense_4h_to_h); dropout off so that a training step is deterministic."""
    from transformers import (BloomConfig, BloomForCausalLM, Gemma3ForCausalLM, Gemma3TextConfig, GPT2Config,
                              GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM)

    common = dict(vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512, pad_token_id=0)
    torch.manual_seed(0)
    if arch == "llama":
        return LlamaForCausalLM(LlamaConfig(**common, tie_word_embeddings=True))
    if arch == "llama-untied":  # tied tiny random models repeat their last token; untied ones emit varied text
        return LlamaForCausalLM(LlamaConfig(**common, tie_word_embeddings=False))
    if arch == "qwen2":
        return Qwen2ForCausalLM(Qwen2Config(**common))
    if arch == "gemma3":
        return Gemma3ForCausalLM(Gemma3TextConfig(**common, head_dim=8, sliding_window=16))
    if arch == "gpt2":  # plain (not gated) MLP, Conv1D projections c_fc/c_proj; no dropout (exact gradients)
        return GPT2LMHeadModel(GPT2Config(vocab_size=vocab_size, n_embd=32, n_inner=64, n_layer=2, n_head=4,
                                          n_positions=512, pad_token_id=0, bos_token_id=1, eos_token_id=3,
                                          resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0))
    if arch == "bloom":  # plain MLP, nn.Linear projections dense_h_to_4h/dense_4h_to_h
        return BloomForCausalLM(BloomConfig(vocab_size=vocab_size, hidden_size=32, n_layer=2, n_head=4,
                                            pad_token_id=0, bos_token_id=1, eos_token_id=3,
                                            hidden_dropout=0.0, attention_dropout=0.0))
    raise ValueError(arch)


@pytest.fixture(scope="session")
def tiny_model_factory(tmp_path_factory):
    """tiny_model_factory(arch='llama', chat=True) -> path of a saved tiny model + tokenizer."""
    made: dict = {}

    def make(arch: str = "llama", chat: bool = True) -> Path:
        key = (arch, chat)
        if key not in made:
            tok = build_tokenizer(chat)
            model = build_tiny_model(arch, len(tok))
            model.generation_config.eos_token_id = tok.eos_token_id
            model.generation_config.pad_token_id = tok.pad_token_id
            path = tmp_path_factory.mktemp(f"tiny-{arch}-{'chat' if chat else 'base'}")
            model.save_pretrained(path)
            tok.save_pretrained(path)
            made[key] = path
        return made[key]

    return make


@pytest.fixture(scope="session")
def tiny_model(tiny_model_factory) -> Path:
    return tiny_model_factory("llama", True)
