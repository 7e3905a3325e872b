"""`--decode-attention matmul`: single-token decode steps attend with two grouped matmuls instead of sdpa's kernel.

On CPU, torch's fused sdpa kernel (`_scaled_dot_product_flash_attention_for_cpu`) is built for long query blocks;
a decode step has one query row per head, and the kernel's per-call overhead dominates: in a profile of 32 IFEval
prompts on SmolLM2-135M at bf16 batch 32 it took 23 % of a decode step at ~140 cached tokens, and a grouped
`q @ kᵀ`, softmax in float32, `p @ v` over the key/value heads (no `repeat_kv` copy) was 2-2.5× faster for the
same shapes. It is an explicit option, not the default: the scores are rounded differently (bf16 matmul output
instead of the kernel's float32 accumulator), so bf16 outputs are not bit-identical to the sdpa path. Prefill
(several query positions) and anything unusual (soft-capping, position bias, dropout) keep transformers' sdpa.
"""

from __future__ import annotations

import torch

NAME = "harness_decode_matmul"
_registered = False


def decode_matmul_attention(module, query, key, value, attention_mask, dropout=0.0, scaling=None, is_causal=None,
                            **kwargs):
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    if (query.shape[2] != 1 or dropout or kwargs.get("softcap") is not None
            or kwargs.get("position_bias") is not None or key.shape[-1] != value.shape[-1]):
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      is_causal=is_causal, **kwargs)
    batch, heads, _, dim = query.shape
    kv_heads = key.shape[1]
    q = query.reshape(batch, kv_heads, heads // kv_heads, dim)  # the query heads sharing one key/value head
    scores = torch.matmul(q, key.transpose(-1, -2)).float() * (dim ** -0.5 if scaling is None else scaling)
    if attention_mask is not None:  # [batch, 1, 1, length]: bool (True attends) or additive float
        mask = attention_mask[..., -key.shape[-2]:]
        if mask.dtype == torch.bool:
            scores = scores.masked_fill(~mask, float("-inf"))
        else:
            scores = scores + mask.float()
    out = torch.matmul(scores.softmax(-1).to(value.dtype), value)  # [batch, kv_heads, group, dim]
    return out.reshape(batch, 1, heads, dim), None


def use_decode_matmul(model) -> None:
    """Switch `model` (a transformers model using sdpa) to matmul attention for decode steps."""
    global _registered
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, AttentionMaskInterface

    if not _registered:
        AttentionInterface.register(NAME, decode_matmul_attention)
        AttentionMaskInterface.register(NAME, ALL_MASK_ATTENTION_FUNCTIONS["sdpa"])
        _registered = True
    model.set_attn_implementation(NAME)
