"""The decode loop's KV cache grows into spare capacity instead of re-concatenating: same values, same outputs."""

from __future__ import annotations

import pytest
import torch
from transformers.cache_utils import DynamicLayer

from harness.backends import hf, kvcache
from harness.backends.hf import HFBackend
from harness.loading import BackendConfig, load_model_and_tokenizer
from tests.test_hf_backend import _requests


class _Cache:  # what kvcache's row surgery needs: a list of layers
    def __init__(self, layers):
        self.layers = layers

    def batch_select_indices(self, sel):
        for layer in self.layers:
            layer.batch_select_indices(sel)


def _kv(batch: int, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 2, n, 4, generator=g), torch.randn(batch, 2, n, 4, generator=g)


def test_growing_layer_matches_dynamic_layer_through_row_surgery(tiny_model):
    from transformers import AutoConfig

    cache = kvcache.new_cache(type("M", (), {"config": AutoConfig.from_pretrained(tiny_model)})())
    grow_cls = type(cache.layers[0])
    assert grow_cls is not DynamicLayer and issubclass(grow_cls, DynamicLayer)
    grow, plain = _Cache([grow_cls()]), _Cache([DynamicLayer()])
    for c in (grow, plain):
        c.layers[0].update(*_kv(3, 5, 0))
    ptrs = set()
    for step in range(1, 40):
        for c in (grow, plain):
            c.layers[0].update(*_kv(c.layers[0].keys.shape[0], 1, step))
        ptrs.add(grow.layers[0].keys.data_ptr())
        if step == 10:  # a row leaves
            for c in (grow, plain):
                kvcache.select_rows(c, torch.tensor([0, 2]))
        if step == 20:  # leading columns nobody attends to are trimmed
            attn = torch.ones(2, plain.layers[0].keys.shape[-2], dtype=torch.long)
            attn[:, :3] = 0
            for c in (grow, plain):
                kvcache.trim_left(c, attn)
        if step == 30:  # new rows join
            for c in (grow, plain):
                new = _Cache([type(c.layers[0])()])
                new.layers[0].update(*_kv(2, 4, 99))
                width = c.layers[0].keys.shape[-2]
                kvcache.merge(c, torch.ones(2, width, dtype=torch.long), new, torch.ones(2, 4, dtype=torch.long))
        assert torch.equal(grow.layers[0].keys, plain.layers[0].keys)
        assert torch.equal(grow.layers[0].values, plain.layers[0].values)
    # appends write into spare capacity: a new buffer only at the start and after each of the three surgeries
    assert len(ptrs) <= 4


@pytest.mark.parametrize("arch,dtype,scheduler", [("llama-untied", "float32", "continuous"),
                                                  ("llama-untied", "bfloat16", "static"),
                                                  ("qwen2", "float32", "continuous"),
                                                  ("gemma3", "bfloat16", "static")])
def test_outputs_identical_to_the_default_cache(tiny_model_factory, monkeypatch, arch, dtype, scheduler):
    path = tiny_model_factory(arch, False)
    cfg = BackendConfig(dtype=dtype, device="cpu", batch_size=4, scheduler=scheduler)
    model, tok = load_model_and_tokenizer(path, cfg)
    reqs = _requests(16)
    grown = [(g.text, g.n_new_tokens, g.finish) for g in HFBackend(model, tok, cfg).generate(reqs)]
    monkeypatch.setattr(hf, "new_cache", lambda model: None)  # the model's own DynamicCache (torch.cat per step)
    default = [(g.text, g.n_new_tokens, g.finish) for g in HFBackend(model, tok, cfg).generate(reqs)]
    assert grown == default
    assert len({n for _, n, _ in grown}) >= 3  # rows finished at different steps: the surgery paths ran
