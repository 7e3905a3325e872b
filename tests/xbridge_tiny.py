"""Tiny random models for the XBridge tests: an M2M100ForConditionalGeneration (the class NLLB-200
checkpoints load as) with a BPE tokenizer carrying NLLB-style language tokens (deu_Latn, eng_Latn, ...)
as special tokens, next to the tiny causal LMs of conftest.py (different hidden sizes on purpose)."""

from __future__ import annotations

from pathlib import Path

import torch

NLLB_CODES = ["eng_Latn", "deu_Latn", "ces_Latn", "rus_Cyrl", "zho_Hans", "fra_Latn"]


def build_nmt_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from conftest import _training_lines

    specials = ["<s>", "<pad>", "</s>", "<unk>"] + NLLB_CODES
    tk = Tokenizer(models.BPE(unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=500, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tk.train_from_iterator(_training_lines(), trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tk, bos_token="<s>", pad_token="<pad>", eos_token="</s>",
                                   unk_token="<unk>", additional_special_tokens=NLLB_CODES)


def build_tiny_nmt(path: Path, d_model: int = 24) -> Path:
    from transformers import M2M100Config, M2M100ForConditionalGeneration

    tok = build_nmt_tokenizer()
    cfg = M2M100Config(vocab_size=len(tok), d_model=d_model, encoder_layers=2, decoder_layers=2,
                       encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=48, decoder_ffn_dim=48,
                       max_position_embeddings=512, pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
                       eos_token_id=tok.eos_token_id, decoder_start_token_id=tok.eos_token_id, dropout=0.0,
                       attention_dropout=0.0, activation_dropout=0.0, scale_embedding=True)
    torch.manual_seed(1)
    model = M2M100ForConditionalGeneration(cfg)
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path
