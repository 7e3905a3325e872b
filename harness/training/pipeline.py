"""Steps every supervised method shares: data → contamination guard → cache key → prompts → save.

A method's `train.py` reads top to bottom as: `prepare()` (data and cache lookup), load the
model, build features, run `trainer.train(..., save_to=prep.dir)` (it saves), `finish()`.
The cache itself (key → folder → reuse → manifest) is `harness.training.artifacts.artifact_cache`, which
composite methods (relay, xbridge) use directly.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from harness.config import to_dict
from harness.io import stable_hash
from harness.errors import HarnessError
from harness.method import Artifact, TrainContext
from harness.training.artifacts import ArtifactCache, artifact_cache
from harness.training.contamination import guard
from harness.training.data import Example, load_training_data


@dataclass
class Prepared:
    examples: list[Example]
    data_report: dict  # loading stats + contamination report, recorded in the artifact config
    config: dict  # method config as JSON
    config_hash: str
    dir: Path
    cached: Artifact | None  # a finished artifact with this config hash, when one exists
    cache: ArtifactCache | None = None


def prepare(method: str, cfg, ctx: TrainContext) -> Prepared:
    examples, stats = load_training_data(cfg.data, ctx.data, seed=ctx.seed)
    examples, report = guard(examples, ctx.eval_tasks, drop=ctx.allow_overlap)
    fingerprint = stable_hash([(e.src, e.tgt, e.source, e.reference) for e in examples])
    config = to_dict(cfg)
    # under `accelerate launch` the global batch is batch_size * processes: part of the key when > 1
    world = int(os.environ.get("WORLD_SIZE", "1"))
    # the training prompt: part of the key (and recorded) only when it is not the FLORES prompt, so the keys of
    # artifacts trained for FLORES (all committed ones) are unchanged
    prompt = training_prompt(ctx)
    extra = {"train_prompt": prompt} if prompt is not None else {}
    key = {**config, "seed": ctx.seed, **({"world_size": world} if world > 1 else {}), **extra}
    cache = artifact_cache(method, key, fingerprint, ctx.out_dir, ctx.model.identity().get("weights_sha256", ""))
    report = {**stats, "contamination": report, "fingerprint": fingerprint, "n_train": len(examples), **extra}
    return Prepared(examples, report, config, cache.config_hash, cache.folder, cache.cached, cache)


def _prompt_task(ctx: TrainContext):
    """The task whose prompt supervised methods train on (`TrainContext.prompts`, chosen by
    `tasks.training_prompts`: the first translation task the run evaluates, else FLORES)."""
    if ctx.prompts is None:
        raise HarnessError("TrainContext.prompts: not set; build it with tasks.training_prompts(eval_tasks, data)")
    return ctx.prompts.task


def _prompt_of(task) -> dict:
    p = task.cfg.prompt
    return {"task": task.name, "template": p.template, "system": p.system, "chat": p.chat}


def training_prompt(ctx: TrainContext) -> dict | None:
    """The training prompt when it differs from the FLORES prompt (tasks/flores.yaml), else None."""
    mine = _prompt_of(_prompt_task(ctx))
    flores = _prompt_of(ctx.prompts.reference)
    same = all(mine[k] == flores[k] for k in ("template", "system", "chat"))
    return None if same else mine


def prompt_messages(ctx: TrainContext):
    """messages(example) with the prompt of the translation task the run evaluates (FLORES when it evaluates
    none), rendered exactly as evaluation renders it; and that prompt's chat setting."""
    task = _prompt_task(ctx)
    return (lambda ex: task.messages(ex.doc(), [])), task.cfg.prompt.chat


def finish(prep: Prepared, method: str, kind: str, extra: dict | None = None, report: dict | None = None) -> Artifact:
    """Write the manifest (main process only, once every process is done; the others then read it).

    `extra` goes to the manifest only; `report` joins the artifact's config, which results.json records."""
    cache = prep.cache or ArtifactCache(method, prep.dir, prep.config_hash, prep.cached)
    return cache.save(kind, {**prep.config, "training_data": prep.data_report, **(report or {})}, extra)
