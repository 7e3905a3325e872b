"""Rationales from the FROZEN initial model, generated once and cached.

Prompt = the evaluation chat prompt with the reference translation forced as the beginning of the
assistant's reply (`Request.assistant_prefix`); the model continues (greedy, bounded) with its own
text, typically an explanation. Nothing is scored or filtered (as in the paper).

Cache: `$HARNESS_CACHE/rationales/<weights sha256[:16]>.jsonl`, one record per
key = hash(weights sha256, generation dtype, rendered prompt incl. the reference prefix, max_new_tokens).
A different model, dtype, prompt template or length bound never reuses a record; the same ones are never
regenerated.
"""

from __future__ import annotations

import os
from pathlib import Path

from tqdm.auto import tqdm

from harness.backends.base import Request
from harness.backends.hf import HFBackend, load_model_and_tokenizer
from harness.io import JsonlStore, stable_hash
from harness.memory import release_memory
from harness.models import cache_dir
from harness.prompting import render
from harness.task import GenerationConfig


def cache_path(weights_sha: str) -> Path:
    return cache_dir() / "rationales" / f"{(weights_sha or 'unknown')[:16]}.jsonl"


EXPLAIN_PROMPT = "Explain the translation above."


def rationale_request(ex, messages, mode: str) -> tuple[list[dict], str]:
    """(messages, assistant prefix) whose continuation is the rationale of `ex`."""
    msgs = messages(ex)
    if mode == "explain":  # SPECS variant B: ask for an explanation in a second user turn
        return msgs + [{"role": "assistant", "content": ex.reference}, {"role": "user", "content": EXPLAIN_PROMPT}], ""
    return msgs, ex.reference


def join(reference: str, rationale: str, mode: str) -> str:
    """Training target = reference ⊕ rationale."""
    if mode == "explain" and rationale.strip():
        return reference + "\n\n" + rationale.strip()
    return reference + rationale


def rationales(examples, messages, chat: str, ctx, max_new_tokens: int, batch_size: int,
               mode: str = "continue") -> tuple[list[str], dict]:
    """One rationale per example (same order) and {"generated", "reused", "cache"}.

    Under `accelerate launch` the main process alone opens the cache and generates; the others wait
    at a barrier and then read what it wrote (no process touches the file while another appends)."""
    from accelerate import PartialState

    from harness.backends.hf import load_tokenizer, pick_device, pick_dtype

    sha = ctx.model.identity().get("weights_sha256", "")
    dtype = str(pick_dtype(ctx.backend.dtype, pick_device(ctx.backend.device))).replace("torch.", "")
    tok = load_tokenizer(ctx.model.path, ctx.backend.trust_remote_code)
    keys, todo = [], {}
    for ex in examples:
        msgs, prefix = rationale_request(ex, messages, mode)
        prompt = render(tok, msgs, chat, assistant_prefix=prefix)
        key = stable_hash({"model": sha, "dtype": dtype, "prompt": prompt, "max_new_tokens": max_new_tokens})
        keys.append(key)
        gen = GenerationConfig(max_new_tokens=max_new_tokens, temperature=0.0)
        todo.setdefault(key, Request(id=key, messages=msgs, gen=gen, chat=chat, assistant_prefix=prefix))
    # accelerate's process state only under a multi-process launch (in a plain process it would fix its device
    # before the trainer's Accelerator is made), and with the trainer's `cpu` flag: without it a CPU-only launch
    # is not seen as distributed and every process would think it is the main one
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    state = PartialState(cpu=pick_device(ctx.backend.device).type == "cpu") if distributed else None
    main = state is None or state.is_main_process
    reqs: list[Request] = []
    if main:
        store = JsonlStore(cache_path(sha), key_field="key")
        reqs = [r for k, r in todo.items() if k not in store]
        if reqs:
            _generate(reqs, store, ctx, batch_size, sha, max_new_tokens)
    if state is not None:
        state.wait_for_everyone()
    if not main:
        store = JsonlStore(cache_path(sha), key_field="key")
    out = [store.records[k]["rationale"] for k in keys]
    return out, {"generated": len(reqs), "reused": len(todo) - len(reqs), "cache": str(store.path)}


def _generate(reqs: list[Request], store: JsonlStore, ctx, batch_size: int, sha: str, max_new_tokens: int) -> None:
    model, tok = load_model_and_tokenizer(ctx.model.path, ctx.backend)  # frozen initial weights
    backend = HFBackend(model, tok, ctx.backend)
    bar = tqdm(total=len(reqs), desc="radis rationales", unit="ex", dynamic_ncols=True)
    step = max(1, batch_size) * 4
    for s in range(0, len(reqs), step):  # append per chunk: an interrupted run keeps what it made
        chunk = reqs[s:s + step]
        gens = backend.generate(chunk, progress=bar)
        store.append({"key": r.id, "rationale": g.text, "n_new_tokens": g.n_new_tokens, "finish": g.finish,
                      "model_sha256": sha, "max_new_tokens": max_new_tokens} for r, g in zip(chunk, gens))
    bar.close()
    del model, backend
    release_memory()
