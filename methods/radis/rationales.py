"""Rationales from the FROZEN initial model, generated once and cached.

Prompt variants (`RaDisConfig.rationale_prompt`, see methods/radis/README.md):
- `continue` (our reading of the paper's form): the evaluation chat prompt with the reference
  translation forced as the beginning of the assistant's reply (`Request.assistant_prefix`); the model
  continues (greedy, bounded) with its own text, for a 7B chat model typically an explanation.
- `explain` (ours, for models that end their turn after the reference): the reference is the assistant's
  first reply and a second user turn asks EXPLAIN_PROMPT; the answer is the rationale.
- `explain_words`: as `explain` with a more specific question (EXPLAIN_WORDS_PROMPT).
Nothing is scored or filtered (as in the paper); `rationale_stats` summarises what was generated.

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
from harness.backends.factory import build_backend
from harness.io import JsonlStore, stable_hash
from harness.memory import release_memory
from harness.models import cache_dir
from harness.prompting import render
from harness.task_config import GenerationConfig


def cache_path(weights_sha: str) -> Path:
    return cache_dir() / "rationales" / f"{(weights_sha or 'unknown')[:16]}.jsonl"


EXPLAIN_PROMPT = "Explain the translation above."
EXPLAIN_WORDS_PROMPT = ("Explain the translation above: which words and phrases of the source correspond to which "
                        "words of the translation, and why were they translated this way?")
# second-turn question of each variant; None: the model continues its own reply after the forced reference
PROMPTS: dict[str, str | None] = {"continue": None, "explain": EXPLAIN_PROMPT, "explain_words": EXPLAIN_WORDS_PROMPT}


def rationale_request(ex, messages, mode: str) -> tuple[list[dict], str]:
    """(messages, assistant prefix) whose continuation is the rationale of `ex`."""
    msgs = messages(ex)
    question = PROMPTS[mode]
    if question is not None:  # ask for an explanation in a second user turn
        return msgs + [{"role": "assistant", "content": ex.reference}, {"role": "user", "content": question}], ""
    return msgs, ex.reference


def join(reference: str, rationale: str, mode: str) -> str:
    """Training target = reference ⊕ rationale (an answer to a second turn follows after a blank line)."""
    if PROMPTS[mode] is not None:
        return reference + "\n\n" + rationale.strip() if rationale.strip() else reference
    return reference + rationale


def rationale_stats(records: list[dict]) -> dict:
    """Summary of cache records ({"rationale", "n_new_tokens", "finish"}): count, empty rate, token lengths,
    finish reasons (eos: the model ended its answer; length: cut at rationale_max_new_tokens)."""
    n = len(records)
    toks = sorted(int(r.get("n_new_tokens", 0)) for r in records)
    empty = sum(not r["rationale"].strip() for r in records)
    finish: dict[str, int] = {}
    for r in records:
        finish[r.get("finish", "unknown")] = finish.get(r.get("finish", "unknown"), 0) + 1
    median = 0.0 if not n else (toks[n // 2] if n % 2 else (toks[n // 2 - 1] + toks[n // 2]) / 2)
    return {"n": n, "empty": empty, "empty_rate": empty / n if n else 0.0,
            "mean_tokens": sum(toks) / n if n else 0.0, "median_tokens": median,
            "mean_chars": sum(len(r["rationale"].strip()) for r in records) / n if n else 0.0,
            "finish": dict(sorted(finish.items()))}


def stats_line(name: str, s: dict, mode: str, when: str = "") -> str:
    return (f"[{name}] rationales{when} ({mode}): {s['generated']} generated, {s['reused']} reused from {s['cache']}; "
            f"{s['n']} used, {s['empty_rate']:.0%} empty, tokens mean {s['mean_tokens']:.1f} median "
            f"{s['median_tokens']:.0f}, finish {s['finish']}")


EMPTY_WARN = 0.2  # above this empty rate the run says the method degenerates to SFT on references


def empty_warning(stats: dict, mode: str) -> str | None:
    """One line when too many rationales are empty (training is then mostly plain SFT), with the fix."""
    if stats["n"] and stats["empty_rate"] > EMPTY_WARN:
        fix = ("set `rationale_prompt: explain` in the method config (a second user turn asks for the explanation)"
               if mode == "continue" else "try another `rationale_prompt` (python -m bench.radis_prompts)")
        return (f"[radis] WARNING: {stats['empty']}/{stats['n']} rationales are empty "
                f"({stats['empty_rate']:.0%} > {EMPTY_WARN:.0%}): training is mostly plain SFT on references; {fix}")
    return None


def rationales(examples, messages, chat: str, ctx, max_new_tokens: int, batch_size: int,
               mode: str = "continue") -> tuple[list[str], dict]:
    """One rationale per example (same order) and {"generated", "reused", "cache", "prompt"} plus
    `rationale_stats` of the examples' records.

    Under `accelerate launch` the main process alone opens the cache and generates; the others wait
    at a barrier and then read what it wrote (no process touches the file while another appends)."""
    from accelerate import PartialState

    from harness.loading import load_tokenizer, pick_device, pick_dtype

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
    records = [store.records[k] for k in keys]
    return [r["rationale"] for r in records], {"generated": len(reqs), "reused": len(todo) - len(reqs),
                                               "cache": str(store.path), "prompt": mode,
                                               **rationale_stats(records)}


def _generate(reqs: list[Request], store: JsonlStore, ctx, batch_size: int, sha: str, max_new_tokens: int) -> None:
    backend = build_backend("transformers", None, None, ctx.model, ctx.backend)  # frozen initial weights
    bar = tqdm(total=len(reqs), desc="radis rationales", unit="ex", dynamic_ncols=True)
    step = max(1, batch_size) * 4
    for s in range(0, len(reqs), step):  # append per chunk: an interrupted run keeps what it made
        chunk = reqs[s:s + step]
        gens = backend.generate(chunk, progress=bar)
        store.append({"key": r.id, "rationale": g.text, "n_new_tokens": g.n_new_tokens, "finish": g.finish,
                      "model_sha256": sha, "max_new_tokens": max_new_tokens} for r, g in zip(chunk, gens))
    bar.close()
    del backend
    release_memory()
