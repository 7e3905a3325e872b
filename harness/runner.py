"""Evaluate one model (or method artifact) on tasks: docs → requests → backend → samples.jsonl → results.json.

Samples are appended to `<out>/<task>/samples.jsonl` every `chunk_size` documents, so a crash
loses at most one chunk; rerunning the same command skips finished documents. `<out>/<task>/run.json`
holds the fingerprint of what produced the samples (model, artifact, task config, dtype, seed):
resuming into a folder made by something else is refused instead of mixing results.
"""

from __future__ import annotations

import time
from typing import Protocol

from tqdm.auto import tqdm

from harness.abilities import request_langs
from harness.backends.base import Generation, Request
from harness.errors import HarnessError
from harness.io import JsonlStore, remove_stale_tmp, sha256_text
from harness.rundir.context import EvalContext, select_docs
from harness.rundir.lock import clear_tmp
from harness.rundir.write import check_fingerprint, open_samples, write_results, write_samples
from harness.task import Task


class Backend(Protocol):
    def generate(self, requests: list[Request], progress=None) -> list[Generation]: ...
    def settings(self) -> dict: ...


def is_loglik(task: Task) -> bool:
    return task.kind == "loglik"


def generate_samples(task: Task, backend: Backend, ctx: EvalContext) -> JsonlStore:
    if is_loglik(task):
        from harness.scoring import score_samples

        return score_samples(task, backend, ctx)
    task_dir = ctx.out_dir / task.name
    check_fingerprint(task_dir, ctx.fingerprint(task, backend.settings()))
    clear_tmp(ctx.out_dir), remove_stale_tmp(task_dir)  # from a run killed mid atomic write
    store = open_samples(ctx.out_dir, task.name)
    if store.repaired:
        tqdm.write(f"[{task.name}] cut a torn last line from {store.path} (it will be regenerated)")
    docs = select_docs(task, ctx.limit)
    todo = [d for d in docs if d["id"] not in store]
    if not todo:
        return store
    for d in todo[:1]:  # a prompt-template error surfaces now, not in the middle of a progress bar
        task.messages(d, [])
    with tqdm(total=len(todo) * task.n_rounds, desc=f"{task.name} generate", unit="gen", dynamic_ncols=True) as bar:
        for start in range(0, len(todo), ctx.chunk_size):
            chunk = todo[start : start + ctx.chunk_size]
            raw: list[list[Generation]] = [[] for _ in chunk]
            cleaned: list[list[str]] = [[] for _ in chunk]
            steps: list[list[list[str]]] = [[] for _ in chunk]
            for round_idx in range(task.n_rounds):
                reqs = [
                    Request(id=f"{d['id']}#{round_idx}", messages=task.messages(d, cleaned[i]),
                            gen=task.generation(d, round_idx), chat=task.cfg.prompt.chat, seed=ctx.seed,
                            langs=request_langs(task, d),
                            doc=d, round=round_idx)
                    for i, d in enumerate(chunk)
                ]
                for i, g in enumerate(backend.generate(reqs, progress=bar)):
                    text, applied = task.clean(chunk[i], g.text)
                    raw[i].append(g)
                    cleaned[i].append(text)
                    steps[i].append(applied)
            store.append(_record(task, d, raw[i], cleaned[i], steps[i]) for i, d in enumerate(chunk))
    return store


def _record(task: Task, doc: dict, gens: list[Generation], cleaned: list[str], steps: list[list[str]]) -> dict:
    rec = {
        "id": doc["id"],
        "subset": doc["subset"],
        "prompts": [g.prompt for g in gens],
        "prompt_hash": sha256_text("\x1e".join(g.prompt for g in gens))[:16],
        "raw": [g.text for g in gens],
        "outputs": cleaned,
        "cleaning": steps,
        "n_new_tokens": [g.n_new_tokens for g in gens],
        "finish": [g.finish for g in gens],
    }
    rec.update(task.score(doc, cleaned))
    return rec


def aggregate(task: Task, store: JsonlStore, limit: int | None) -> dict:
    """Metrics per subset and overall from the sample records of the selected documents."""
    docs = select_docs(task, limit)
    missing = [d["id"] for d in docs if d["id"] not in store]
    if missing:
        raise HarnessError(f"{store.path}: {len(missing)} samples missing (first {missing[0]!r}); rerun to finish")
    by_subset: dict[str, list[dict]] = {}
    for d in docs:
        by_subset.setdefault(d["subset"], []).append(store.records[d["id"]])
    per_subset = {s: task.aggregate(s, recs) for s, recs in by_subset.items()}
    summary = task.summarize(per_subset, by_subset)
    task.check_summary(summary)  # a declared leaderboard column whose key is missing fails here, not silently
    records = [r for recs in by_subset.values() for r in recs]
    n_length = sum(f == "length" for r in records for f in r.get("finish", []))
    n_gens = sum(len(r.get("finish", [])) for r in records)
    return {
        "metrics": per_subset,
        "summary": summary,
        "n_samples": len(records),
        "truncated": {"count": n_length, "rate": n_length / n_gens if n_gens else 0.0},
    }


def rescore(task: Task, store: JsonlStore) -> None:
    """Recompute per-sample scores (no model calls); rewrites samples.jsonl atomically. Single-round tasks are
    also cleaned again from the raw outputs, so a fixed extraction applies (in multi-round tasks a cleaned
    output is part of the next round's prompt: it stays as generated)."""
    docs = {d["id"]: d for s in task.selected for d in task.docs(s)}
    for key, rec in store.records.items():
        if key in docs:
            if is_loglik(task):
                rec.update(task.score(docs[key], rec["loglik"]))
                continue
            if task.n_rounds == 1 and len(rec.get("raw", [])) == len(rec["outputs"]):
                cleaned = [task.clean(docs[key], raw) for raw in rec["raw"]]
                rec["outputs"], rec["cleaning"] = [c[0] for c in cleaned], [c[1] for c in cleaned]
            rec.update(task.score(docs[key], rec["outputs"]))
    write_samples(store.path, store.records.values())


def evaluate(task: Task, backend: Backend, ctx: EvalContext) -> dict:
    t0 = time.time()
    store = generate_samples(task, backend, ctx)
    agg = aggregate(task, store, ctx.limit)
    return write_results(ctx, task, backend.settings(), agg, time.time() - t0)
