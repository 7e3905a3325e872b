"""Greedy batched decoding with llama.cpp (llama-cpp-python's low-level API), as its server does with parallel slots:
each prompt is one sequence of a shared KV cache; every decode step sends one token per live sequence in one batch.
Bench-only (`pip install llama-cpp-python`, builds from its sdist); used by bench/bench_longgen.py.

Prompts arrive as token ids from the harness tokenizer (same vocabulary as the GGUF), so both engines see the same
input ids; a sequence ends at an end-of-turn id or after `max_new` tokens.

Prefill sends the prompts of all slots together, up to the server's default logical batch of 2048 tokens per call
(physical batch 512), with one unified KV buffer, as `llama-server --parallel N` does.
"""

from __future__ import annotations

import ctypes
import time

import numpy as np


def generate(gguf: str, prompts: list[list[int]], max_new: int, slots: int, threads: int,
             eos_ids: set[int]) -> tuple[list[list[int]], float, str]:
    import llama_cpp as L

    L.llama_backend_init()
    mparams = L.llama_model_default_params()
    model = L.llama_model_load_from_file(gguf.encode(), mparams)
    if not model:
        raise SystemExit(f"llama.cpp could not load {gguf}")
    per_seq = max(map(len, prompts)) + max_new + 8
    n_batch = max(2048, slots)  # the server's default logical batch: prompts of several slots prefill together
    cparams = L.llama_context_default_params()
    cparams.n_ctx = per_seq * slots
    cparams.n_batch = n_batch
    cparams.n_ubatch = 512  # the server's default physical batch
    cparams.n_seq_max = slots
    cparams.kv_unified = True  # one KV buffer shared by the slots (the server's default with --parallel)
    cparams.n_threads = cparams.n_threads_batch = threads
    ctx = L.llama_init_from_model(model, cparams)
    n_vocab = L.llama_vocab_n_tokens(L.llama_model_get_vocab(model))
    batch = L.llama_batch_init(n_batch, 0, slots)
    outs: list[list[int]] = [[] for _ in prompts]

    def run(items: list[tuple[int, int, int, bool]]) -> None:  # (token, position, sequence, wants logits)
        for i, (tok, pos, seq, logits) in enumerate(items):
            batch.token[i], batch.pos[i], batch.n_seq_id[i], batch.logits[i] = tok, pos, 1, logits
            batch.seq_id[i][0] = seq
        batch.n_tokens = len(items)
        if L.llama_decode(ctx, batch) != 0:
            raise SystemExit("llama_decode failed")

    def pick(i: int) -> int:
        ptr = L.llama_get_logits_ith(ctx, i)
        return int(np.ctypeslib.as_array(ctypes.cast(ptr, ctypes.POINTER(ctypes.c_float)), shape=(n_vocab,)).argmax())

    t0 = time.perf_counter()
    order = sorted(range(len(prompts)), key=lambda k: -len(prompts[k]))
    for start in range(0, len(order), slots):
        group = order[start:start + slots]
        mem = L.llama_get_memory(ctx)
        L.llama_memory_clear(mem, True)
        nxt, pos = {}, {}
        items = [(t, p, slot, p == len(prompts[k]) - 1) for slot, k in enumerate(group)
                 for p, t in enumerate(prompts[k])]
        for at in range(0, len(items), n_batch):  # prefill: the slots' prompts together, n_batch tokens per call
            chunk = items[at:at + n_batch]
            run(chunk)
            for i, (_, p, slot, last) in enumerate(chunk):
                if last:
                    nxt[slot], pos[slot] = pick(i), p + 1
        live = list(range(len(group)))
        while live:
            still = []
            for slot in live:
                k = group[slot]
                if nxt[slot] in eos_ids:
                    continue
                outs[k].append(nxt[slot])
                if len(outs[k]) < max_new:
                    still.append(slot)
            live = still
            if not live:
                break
            run([(nxt[s], pos[s], s, True) for s in live])
            for i, s in enumerate(live):
                nxt[s], pos[s] = pick(i), pos[s] + 1
    wall = time.perf_counter() - t0
    L.llama_batch_free(batch)
    L.llama_free(ctx)
    L.llama_model_free(model)
    return outs, wall, f"{slots} slots, BF16 GGUF"
