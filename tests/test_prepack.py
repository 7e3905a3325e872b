"""Pre-packed CPU linear weights (harness/backends/prepack.py): `auto` (bf16) is bit-identical to F.linear, whole
generations included; `all` packs float32 too (close, not identical); a packed copy is never used when it could be
stale (autograd, an in-place weight change)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from harness.backends.base import Request
from harness.backends.hf import HFBackend
from harness.backends.prepack import PACKED, available, prepack, unpack
from harness.loading import BackendConfig, load_model_and_tokenizer
from harness.task_config import GenerationConfig

ROWS = [(1,), (2,), (3,), (8,), (33,), (4, 17), (8, 1), (1, 1)]
SHAPES = ((48, 80, False), (96, 40, True), (64, 1000, False))
needs_bf16 = pytest.mark.skipif(not available(torch.bfloat16), reason="this CPU/torch has no oneDNN bf16 kernels")


def _packed(d_in: int, d_out: int, bias: bool, dtype: torch.dtype, mode: str) -> nn.Linear:
    lin = nn.Linear(d_in, d_out, bias=bias).to(dtype).eval()
    assert prepack(nn.Sequential(lin), mode, batch_hint=8) == 1 and PACKED in lin.__dict__
    return lin


@needs_bf16
def test_auto_packs_bf16_bit_for_bit_and_leaves_float32_alone():
    torch.manual_seed(0)
    for d_in, d_out, bias in SHAPES:
        lin = _packed(d_in, d_out, bias, torch.bfloat16, "auto")
        with torch.no_grad():
            for shape in ROWS:
                x = torch.randn(*shape, d_in, dtype=torch.bfloat16)
                assert torch.equal(lin(x), F.linear(x, lin.weight, lin.bias)), (d_in, d_out, shape)
    assert prepack(nn.Sequential(nn.Linear(8, 8)), "auto") == 0  # float32: F.linear's MKL sgemm stays
    assert prepack(nn.Sequential(nn.Linear(8, 8).to(torch.bfloat16)), "off") == 0


def test_all_packs_float32_close_to_f_linear():
    if not available(torch.float32):
        pytest.skip("this torch build has no oneDNN")
    torch.manual_seed(0)
    for d_in, d_out, bias in SHAPES:
        lin = _packed(d_in, d_out, bias, torch.float32, "all")
        with torch.no_grad():
            for shape in ROWS:
                x = torch.randn(*shape, d_in)
                torch.testing.assert_close(lin(x), F.linear(x, lin.weight, lin.bias), rtol=1e-5, atol=1e-5)


@needs_bf16
def test_stale_or_trainable_weights_fall_back_to_f_linear():
    lin = _packed(32, 24, True, torch.bfloat16, "auto")
    x = torch.randn(4, 32, dtype=torch.bfloat16)
    y = lin(x)  # autograd on, weight requires grad: the plain path (a gradient flows)
    assert y.grad_fn is not None and torch.equal(y, F.linear(x, lin.weight, lin.bias))
    with torch.no_grad():
        lin.weight.add_(1.0)  # an optimizer step / merge after packing: the packed copy is stale
        assert torch.equal(lin(x), F.linear(x, lin.weight, lin.bias))
    assert PACKED not in lin.__dict__ and "forward" not in lin.__dict__  # dropped: back to nn.Linear.forward
    prepack(nn.Sequential(lin))
    assert unpack(nn.Sequential(lin)) == 1 and PACKED not in lin.__dict__


def _requests(n: int = 7) -> list[Request]:
    words = "the cat sat on a mat while seven green birds sang about rain and the old city".split()
    return [Request(id=str(i), messages=[{"role": "user", "content": " ".join(words[: 2 + 3 * i])}],
                    gen=GenerationConfig(max_new_tokens=12 + 3 * i), chat="on") for i in range(n)]


@needs_bf16
@pytest.mark.parametrize("arch", ["llama-untied", "qwen2", "gemma3"])
def test_bf16_generations_with_and_without_prepack_are_identical(tiny_model_factory, arch):
    path = tiny_model_factory(arch)
    outs, packed = [], []
    for mode in ("off", "auto"):
        cfg = BackendConfig(dtype="bfloat16", device="cpu", batch_size=4, scheduler="static", prepack=mode)
        backend = HFBackend(*load_model_and_tokenizer(path, cfg), cfg)
        outs.append([(g.text, g.n_new_tokens, g.finish) for g in backend.generate(_requests())])
        packed.append(backend.settings().get("prepacked_linears", 0))
    assert packed[0] == 0 and packed[1] > 0
    assert sum(n for _, n, _ in outs[0]) > 0 and outs[0] == outs[1]
