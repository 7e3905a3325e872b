"""The base model's answers for judge-free drift, produced once and cached.

When a method other than `base` runs a drift-capable task (MT-Bench, AlpacaEval) without --drift-ref, drift
needs the untouched base model's answers to the same prompts. They are generated with the base weights and
kept under `$HARNESS_CACHE/base_answers/<task>-<key>/<task>/samples.jsonl` (the ordinary sample store, with its
run.json fingerprint), where key = hash of (base model name + weights sha256, the task's config (selected
subsets included), --limit, --seed, dtype). A later run with the same key reuses them without loading
or running the base model for generation; a run interrupted mid-way resumes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from harness.io import stable_hash
from harness.judges.drift_ref import DriftPlan
from harness.task import config_dict, Task


@dataclass
class BaseAnswers:
    """Where the cached base answers of one task are, and whether this run had to generate them."""

    plan: DriftPlan
    key: str
    generated: int = 0  # documents generated now (0 = all reused from the cache)
    base: tuple | None = field(default=None, repr=False)  # (model, tokenizer) when loaded here


def cache_key(task: Task, model: dict, limit: int | None, seed: int, dtype: str | None) -> str:
    return stable_hash({"model": model.get("name"), "weights_sha256": model.get("weights_sha256"),
                        "task": config_dict(task), "limit": limit,
                        "seed": seed, "dtype": dtype})[:16]


def cache_root() -> Path:
    from harness.models import cache_dir

    return cache_dir() / "base_answers"


def ensure_base_answers(task: Task, ectx, backend_cfg, dtype: str | None) -> BaseAnswers:
    """Cached base-model answers for the task's selected documents (generated now when missing)."""
    from tqdm.auto import tqdm

    from harness.backends.factory import build_backend
    from harness.rundir.context import EvalContext, select_docs
    from harness.rundir.layout import samples_file
    from harness.rundir.write import open_samples
    from harness.runner import generate_samples

    key = cache_key(task, ectx.model, ectx.limit, ectx.seed, dtype)
    out = cache_root() / f"{task.name}-{key}"
    samples = samples_file(out, task.name)
    ids = [d["id"] for d in select_docs(task, ectx.limit)]
    store = open_samples(out, task.name) if samples.exists() else None
    todo = [i for i in ids if store is None or i not in store]
    if not todo:
        tqdm.write(f"[{task.name}] drift: reusing cached base-model answers {samples}")
        return BaseAnswers(DriftPlan(samples), key)
    tqdm.write(f"[{task.name}] drift: generating the base model's answers ({len(todo)} documents) into {samples}")
    backend = build_backend("transformers", None, None, ectx.model["path"], backend_cfg)  # the untouched base model
    bctx = EvalContext(out_dir=out, method={"name": "base", "config": {}, "artifact": {"kind": "none"}},
                       model=ectx.model, seed=ectx.seed, limit=ectx.limit, chunk_size=ectx.chunk_size)
    generate_samples(task, backend, bctx)
    return BaseAnswers(DriftPlan(samples), key, generated=len(todo), base=(backend.model, backend.tok))
