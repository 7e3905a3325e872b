"""Linear weights pre-packed for oneDNN's CPU matrix kernels (`--prepack`, default `auto`).

`F.linear` on CPU reorders its weight into the GEMM library's blocked layout at every call; at decode time (a few
rows per step) that reorder is a large share of each matmul. Packing every `nn.Linear` weight once, as inductor's
weight freezing does (`torch.ops.mkldnn._reorder_linear_weight` + `_linear_pointwise`), removes it:

- `auto` packs **bf16** weights only. In bf16 `F.linear` itself runs oneDNN, so results are **bit-identical**
  (`tests/test_prepack.py`: every shape class, and whole generations on tiny models); one exception is handled: a
  single-row bf16 product takes a gemv kernel in `F.linear`, so single-row calls keep `F.linear`. Measured on 2 cores
  (SmolLM2, batch 32 decode shapes): 1.1-2.5x per matmul, the 49k-way output layer 9.6 -> 5.7 ms.
- `all` also packs **float32** weights for oneDNN. `F.linear` runs fp32 on MKL's sgemm, so results differ from it
  in the last bits (still fp32 arithmetic throughout): an explicit option, 1.4-4x per fp32 decode matmul (the output
  layer at 8 rows 19.8 -> 4.9 ms). (MKL's own packed sgemm, `torch.ops.mkl._mkl_linear`, would be bit-identical but
  was no faster here.)
- `off`: plain `F.linear`.

Only the forward of each `nn.Linear` instance changes (the module, its parameters and any wrapper around it stay,
so routed/adapter wrappers that call `base(x)` get it too). A call falls back to `F.linear` whenever the packed
copy may not match: autograd on (training), another device or dtype, or the weight changed in place since it was
packed (its version counter moved: an optimizer step, a merge); such a weight's packed copy is dropped. Cost: one
extra copy of the linear weights in memory (135M parameters in bf16: +270 MB). `unpack(model)` restores the plain
forward and frees the copies.
"""

from __future__ import annotations

import types

import torch
import torch.nn.functional as F
from torch import nn

MODES = ("auto", "all", "off")
PACKED = "_harness_packed"  # attribute on a packed nn.Linear: (packed weight, weight version, dtype)


def available(dtype: torch.dtype) -> bool:
    """Whether this torch build has oneDNN's packed linear for `dtype` (bf16 needs bf16 instructions)."""
    if not torch.backends.mkldnn.is_available():
        return False
    if dtype == torch.bfloat16:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return dtype == torch.float32


def dtypes_of(mode: str) -> tuple[torch.dtype, ...]:
    """The weight dtypes a `--prepack` mode packs."""
    return {"auto": (torch.bfloat16,), "all": (torch.bfloat16, torch.float32), "off": ()}[mode]


def _packed_forward(self: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    packed = getattr(self, PACKED, None)
    w = self.weight
    if packed is not None and packed[1] != w._version:  # changed in place since packing: the copy is stale
        _drop(self)
        packed = None
    if (packed is None or x.dtype != packed[2] or x.device.type != "cpu" or (torch.is_grad_enabled() and
                                                                            (w.requires_grad or x.requires_grad))):
        return F.linear(x, w, self.bias)
    if packed[2] == torch.bfloat16 and x.numel() <= x.shape[-1]:  # one row: F.linear's gemv kernel (identical)
        return F.linear(x, w, self.bias)
    return torch.ops.mkldnn._linear_pointwise(x, packed[0], self.bias, "none", [], "")


def _drop(mod: nn.Linear) -> None:
    mod.__dict__.pop(PACKED, None)
    mod.__dict__.pop("forward", None)  # back to nn.Linear.forward


def prepack(model: nn.Module, mode: str = "auto", batch_hint: int = 32) -> int:
    """Pack every CPU `nn.Linear` weight of `model` whose dtype `mode` packs (`dtypes_of`); returns how many.
    `batch_hint`: the rows a typical call has (oneDNN picks its blocking for it; any row count stays correct)."""
    n = 0
    dtypes = dtypes_of(mode)
    with torch.no_grad():
        for mod in model.modules():
            if type(mod) is not nn.Linear or PACKED in mod.__dict__:
                continue
            w = mod.weight
            if w.device.type != "cpu" or w.dim() != 2 or w.dtype not in dtypes or not available(w.dtype) \
                    or w.numel() == 0:
                continue
            mod.__dict__[PACKED] = (torch.ops.mkldnn._reorder_linear_weight(w, batch_hint), w._version, w.dtype)
            mod.forward = types.MethodType(_packed_forward, mod)
            n += 1
    return n


def unpack(model: nn.Module) -> int:
    """Undo `prepack`: plain `nn.Linear.forward` again, packed copies freed; returns how many were packed."""
    n = 0
    for mod in model.modules():
        if isinstance(mod, nn.Linear) and PACKED in mod.__dict__:
            _drop(mod)
            n += 1
    return n
