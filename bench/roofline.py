"""What this machine allows for batched decoding: a memory/compute roofline of one decode step.

    python bench/roofline.py --model smollm2-135m-instruct --batch-size 32 --context 330 --threads 2

A decode step at batch B must read every weight once (the embedding table only for the B rows it looks up, but the
tied output head reads all of it), read the KV cache of every row, and do ~2 x params x B flops. Its time is at
least max(bytes / read bandwidth, flops / matmul throughput), so B / that time bounds tokens/s whatever the engine.
Both rates are measured here with torch at the given threads: the memory bandwidth as the best of a few copies of a
buffer far larger than the caches (bytes read + written), and as the weight-streaming rate of the output head's
matmul at M = B (the shape a decode step runs); the matmul throughput with a large bf16 GEMM. One bound per
bandwidth: with the copy rate it is what the memory allows, with the head matmul's rate what torch's small-M bf16
kernels reach. --context is the mean
number of cached positions per row over the generation (prompt + half the new tokens for rows that run to the cap).
"""

from __future__ import annotations

import argparse
import time


def best_seconds(fn, repeat: int) -> float:
    fn()
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--context", type=int, default=330, help="mean cached positions per row during decoding")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--measured", type=float, default=None, help="an engine's tokens/s to place against the bound")
    args = ap.parse_args()

    import torch
    from transformers import AutoConfig

    from harness.models import resolve_model

    torch.set_num_threads(args.threads)
    cfg = AutoConfig.from_pretrained(resolve_model(args.model).path).get_text_config()
    d, n_layers, vocab = cfg.hidden_size, cfg.num_hidden_layers, cfg.vocab_size
    head_dim = getattr(cfg, "head_dim", None) or d // cfg.num_attention_heads
    kv = cfg.num_key_value_heads * head_dim
    q = cfg.num_attention_heads * head_dim
    per_layer = d * q + 2 * d * kv + q * d + 3 * d * cfg.intermediate_size  # q, k, v, o, gate, up, down
    weights = n_layers * per_layer + vocab * d  # + the output head (tied or not, it is read whole)
    b, elt = args.batch_size, 2  # bf16
    weight_bytes = weights * elt
    kv_bytes = n_layers * 2 * kv * args.context * b * elt
    flops = 2 * weights * b + n_layers * 2 * 2 * q * args.context * b  # matmuls + attention scores and values

    src, dst = torch.ones(256 * 2**20), torch.empty(256 * 2**20)  # 1 GiB each (float32)
    copy_bw = 2 * src.numel() * 4 / best_seconds(lambda: dst.copy_(src), 5)
    x, w = torch.randn(b, d).bfloat16(), torch.randn(vocab, d).bfloat16()
    head_bw = w.numel() * elt / best_seconds(lambda: torch.nn.functional.linear(x, w), 10)
    big_x, big_w = torch.randn(2048, 2048).bfloat16(), torch.randn(2048, 2048).bfloat16()
    peak = 2 * 2048**3 / best_seconds(lambda: big_x @ big_w, 10)

    print(f"{args.model}: {weights / 1e6:.1f}M weights read per step ({weight_bytes / 1e6:.0f} MB bf16), KV cache "
          f"{kv_bytes / 1e6:.0f} MB at batch {b} x {args.context} positions, {flops / 1e9:.1f} GFLOP per step")
    print(f"measured at {args.threads} threads: copy bandwidth {copy_bw / 1e9:.1f} GB/s (read + write), output-head "
          f"matmul streams its weights at {head_bw / 1e9:.1f} GB/s (M={b}), bf16 GEMM {peak / 1e9:.0f} GFLOP/s")
    for name, bw in (("copy", copy_bw), ("head matmul", head_bw)):
        memory = (weight_bytes + kv_bytes) / bw
        compute = flops / peak
        step = max(memory, compute)
        bound = b / step
        line = (f"bound ({name} bandwidth): step >= max({memory * 1e3:.0f} ms memory, {compute * 1e3:.0f} ms compute)"
                f" -> at most {bound:.0f} tokens/s at batch {b}")
        if args.measured:
            line += f"; {args.measured:.0f} tokens/s is {args.measured / bound:.0%} of it"
        print(line)


if __name__ == "__main__":
    main()
