"""The scoring path of the runner: log-likelihood tasks (multiple choice) instead of generation.

Same contract as generation: `<out>/<task>/samples.jsonl` is appended every `chunk_size` documents
(resumable, the same run.json fingerprint check), one record per document with every choice's
log-likelihood, token and character lengths, the chosen index and the per-sample metrics.
"""

from __future__ import annotations

from tqdm.auto import tqdm

from harness.io import JsonlStore, remove_stale_tmp, sha256_text
from harness.rundir.lock import clear_tmp
from harness.rundir.write import check_fingerprint, open_samples


def score_samples(task, backend, ctx) -> JsonlStore:
    from harness.backends.factory import check_serves
    from harness.rundir.context import select_docs

    check_serves(backend, [task], [])  # checked before the run by Method.check_run
    task_dir = ctx.out_dir / task.name
    check_fingerprint(task_dir, ctx.fingerprint(task, backend.settings()))
    clear_tmp(ctx.out_dir), remove_stale_tmp(task_dir)
    store = open_samples(ctx.out_dir, task.name)
    if store.repaired:
        tqdm.write(f"[{task.name}] cut a torn last line from {store.path} (it will be rescored)")
    todo = [d for d in select_docs(task, ctx.limit) if d["id"] not in store]
    if not todo:
        return store
    with tqdm(total=len(todo), desc=f"{task.name} score", unit="doc", dynamic_ncols=True) as bar:
        for start in range(0, len(todo), ctx.chunk_size):
            chunk = todo[start : start + ctx.chunk_size]
            groups = [task.requests(d) for d in chunk]
            results = backend.loglikelihood(groups, progress=bar)
            store.append(_record(task, d, g, res) for d, g, res in zip(chunk, groups, results))
    return store


def _record(task, doc: dict, requests: list[tuple[str, str]], results: list) -> dict:
    contexts = list(dict.fromkeys(c for c, _ in requests))
    continuations = [k for _, k in requests]
    loglik = [[r.logprob, r.is_greedy] for r in results]
    rec = {
        "id": doc["id"],
        "subset": doc["subset"],
        "contexts": contexts,
        "continuations": continuations,
        "prompt_hash": sha256_text("\x1e".join(c + "\x1f" + k for c, k in requests))[:16],
        "loglik": loglik,
        "n_tokens": [r.n_tokens for r in results],
        "n_chars": [len(c) for c in doc["choices"]],
    }
    rec.update(task.score(doc, loglik))
    return rec
