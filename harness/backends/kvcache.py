"""KV-cache surgery for the decode loop in `harness.backends.hf`: growth without copies, rows leaving and joining.

`new_cache(model)` is the cache the backend prefills into: transformers' own `DynamicCache` whose plain layers
append into spare capacity (`GrowingLayer`) instead of `torch.cat`-ing the whole cache at every decode step.
`torch.cat` copies every cached key and value once per generated token, which is O(length²) memory traffic over
a generation (8 % of the decode time in a profile of 32 IFEval prompts on a 135M model at batch 32, growing with
the context). The cached values, and therefore the outputs, are bit-identical: only where they live changes.
"""

from __future__ import annotations

import inspect

import torch


def _growing_layer_class():
    from transformers.cache_utils import DynamicLayer

    class GrowingLayer(DynamicLayer):
        """A `DynamicLayer` whose keys/values are views of the first columns of a larger buffer.

        Anything that replaces `keys`/`values` from outside (row selection, merging, trimming) leaves views that
        no longer start the buffer; the next `update` notices and copies them into a fresh buffer.
        """

        _kbuf: torch.Tensor | None = None
        _vbuf: torch.Tensor | None = None
        # transformers 5 initialises from keys and values, 4.57 from keys only
        _lazy_args = len(inspect.signature(DynamicLayer.lazy_initialization).parameters) - 1

        def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
            if not self.is_initialized:
                self.lazy_initialization(*(key_states, value_states)[: self._lazy_args])
            n = self.keys.shape[-2] if self.keys.numel() else 0
            need = n + key_states.shape[-2]
            if not (_starts(self.keys, self._kbuf, key_states) and _starts(self.values, self._vbuf, value_states)
                    and self._kbuf.shape[-2] >= need):
                capacity = need + max(256, need // 2)
                self._kbuf, self._vbuf = _buffer(key_states, capacity), _buffer(value_states, capacity)
                if n:
                    self._kbuf[..., :n, :] = self.keys
                    self._vbuf[..., :n, :] = self.values
            self._kbuf[..., n:need, :] = key_states
            self._vbuf[..., n:need, :] = value_states
            self.keys, self.values = self._kbuf[..., :need, :], self._vbuf[..., :need, :]
            return self.keys, self.values

    return GrowingLayer


def _buffer(like: torch.Tensor, capacity: int) -> torch.Tensor:
    return like.new_empty((*like.shape[:-2], capacity, like.shape[-1]))


def _starts(view: torch.Tensor, buf: torch.Tensor | None, new: torch.Tensor) -> bool:
    """Whether `view` is the first columns of `buf`, and `new` rows can be written after them."""
    if buf is None or buf.shape[:-2] != new.shape[:-2] or buf.shape[-1] != new.shape[-1] or buf.dtype != new.dtype:
        return False
    return view.numel() == 0 or (view.data_ptr() == buf.data_ptr() and view.shape[:-2] == buf.shape[:-2]
                                 and view.stride() == buf.stride())


_LAYER = None


def new_cache(model):
    """A `DynamicCache` for `model` with growing plain layers, or None (the model then builds its own)."""
    global _LAYER
    try:
        from transformers.cache_utils import DynamicCache, DynamicLayer

        cache = DynamicCache(config=model.config)
    except (ImportError, TypeError, ValueError, AttributeError):  # older transformers or an unreadable config
        return None
    layers = getattr(cache, "layers", None)
    if not layers:
        return None
    _LAYER = _LAYER or _growing_layer_class()
    cache.layers = [_LAYER() if type(layer) is DynamicLayer else layer for layer in layers]
    return cache


def mergeable(cache) -> bool:
    """Rows can join a running batch only when every cache layer is a plain growing one (no sliding window)."""
    from transformers.cache_utils import DynamicLayer

    layers = getattr(cache, "layers", None)
    return bool(layers) and all(type(layer) is DynamicLayer or type(layer) is _LAYER for layer in layers)


def _left_pad(x: torch.Tensor, width: int, dim: int) -> torch.Tensor:
    missing = width - x.shape[dim]
    if missing == 0:
        return x
    shape = list(x.shape)
    shape[dim] = missing
    return torch.cat([x.new_zeros(shape), x], dim=dim)


def merge(cache, attn: torch.Tensor, new_cache, new_attn: torch.Tensor) -> torch.Tensor:
    """Append the rows of `new_cache` to `cache` (in place), left-padding the narrower side; returns the mask."""
    width = max(attn.shape[1], new_attn.shape[1])
    for layer, new in zip(cache.layers, new_cache.layers):
        layer.keys = torch.cat([_left_pad(layer.keys, width, -2), _left_pad(new.keys, width, -2)])
        layer.values = torch.cat([_left_pad(layer.values, width, -2), _left_pad(new.values, width, -2)])
    return torch.cat([_left_pad(attn, width, 1), _left_pad(new_attn, width, 1)])


def trim_left(cache, attn: torch.Tensor) -> torch.Tensor:
    """Drop leading cache columns that no remaining row attends to (left padding of rows that left)."""
    lead = int((attn.sum(0) == 0).long().cumprod(0).sum())
    if lead == 0:
        return attn
    for layer in cache.layers:
        layer.keys, layer.values = layer.keys[..., lead:, :], layer.values[..., lead:, :]
    return attn[:, lead:]


def select_rows(cache, sel: torch.Tensor) -> None:
    """Keep only rows `sel` of a KV cache (transformers 4.57 and 5.x)."""
    if hasattr(cache, "batch_select_indices"):
        cache.batch_select_indices(sel)
    else:
        cache.reorder_cache(sel)
