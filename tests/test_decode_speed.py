"""Decode-loop speed changes keep the token ids: the fp32 greedy pick equals the old in-dtype argmax."""

from __future__ import annotations

import pytest
import torch

from harness.backends.hf import HFBackend, greedy_ids
from harness.loading import BackendConfig, load_model_and_tokenizer
from tests.test_hf_backend import _requests


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
def test_greedy_ids_equal_argmax_in_dtype_including_ties(dtype):
    g = torch.Generator().manual_seed(0)
    for _ in range(50):  # few distinct values over a wide row: many ties for the maximum
        logits = torch.randint(-4, 4, (8, 3000), generator=g).to(dtype)
        assert torch.equal(greedy_ids(logits), logits.argmax(-1))
    logits = torch.randn(8, 3000, generator=g).to(dtype)
    logits[2, 7] = logits[2, 2999] = logits[2].max() + 1  # an explicit tie goes to the first index
    assert greedy_ids(logits)[2].item() == 7 and torch.equal(greedy_ids(logits), logits.argmax(-1))


class _OldPick(HFBackend):
    def _pick(self, logits, rows):
        return logits.argmax(-1)


def test_bf16_decode_token_ids_equal_old_pick(tiny_model_factory):
    path = tiny_model_factory("llama-untied", False)
    cfg = BackendConfig(dtype="bfloat16", device="cpu", batch_size=4, scheduler="static")
    model, tok = load_model_and_tokenizer(path, cfg)
    new, old = HFBackend(model, tok, cfg).generate(_requests()), _OldPick(model, tok, cfg).generate(_requests())
    assert [(g.text, g.n_new_tokens, g.finish) for g in new] == [(g.text, g.n_new_tokens, g.finish) for g in old]
    assert sum(g.n_new_tokens for g in new) > 20


def test_decode_matmul_attention_matches_sdpa_in_fp32(tiny_model_factory):
    """The explicit `decode_attention: matmul` option: same greedy outputs as sdpa in fp32 on a tiny model (bf16
    outputs may differ: the option is documented as not bit-identical), prefill untouched."""
    path = tiny_model_factory("llama-untied", False)
    outs = {}
    for attn in ("sdpa", "matmul"):
        cfg = BackendConfig(dtype="float32", device="cpu", batch_size=4, scheduler="static", decode_attention=attn)
        backend = HFBackend(*load_model_and_tokenizer(path, cfg), cfg)
        outs[attn] = [(g.text, g.n_new_tokens, g.finish) for g in backend.generate(_requests())]
    assert backend.model.config._attn_implementation == "harness_decode_matmul"
    assert backend.settings()["decode_attention"] == "matmul"
    assert outs["matmul"] == outs["sdpa"]


def test_decode_attention_rejects_unknown_value(tiny_model_factory):
    from harness.errors import HarnessError

    cfg = BackendConfig(dtype="float32", device="cpu", decode_attention="flash")
    with pytest.raises(HarnessError, match="--decode-attention flash"):
        HFBackend(*load_model_and_tokenizer(tiny_model_factory("llama", False), cfg), cfg)
