"""Steps every supervised method shares: data → contamination guard → cache key → prompts → save.

A method's `train.py` reads top to bottom as: `prepare()` (data and cache lookup), load the
model, build features, run `trainer.train(..., save_to=prep.dir)` (it saves), `finish()`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from harness.config import to_dict
from harness.io import stable_hash
from harness.method import Artifact, TrainContext
from harness.training.artifacts import artifact_dir, config_hash, load_artifact, save_artifact
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


def prepare(method: str, cfg, ctx: TrainContext) -> Prepared:
    examples, stats = load_training_data(cfg.data, ctx.data, seed=ctx.seed)
    examples, report = guard(examples, ctx.eval_tasks, drop=ctx.allow_overlap)
    fingerprint = stable_hash([(e.src, e.tgt, e.source, e.reference) for e in examples])
    config = to_dict(cfg)
    # under `accelerate launch` the global batch is batch_size * processes: part of the key when > 1
    world = int(os.environ.get("WORLD_SIZE", "1"))
    h = config_hash(method, {**config, "seed": ctx.seed, **({"world_size": world} if world > 1 else {})}, fingerprint)
    folder = artifact_dir(ctx.out_dir, method, ctx.model.identity().get("weights_sha256", ""), h)
    report = {**stats, "contamination": report, "fingerprint": fingerprint, "n_train": len(examples)}
    cached = load_artifact(folder, config_hash=h)
    if cached:
        print(f"[{method}] reusing artifact {folder} (config hash {h})")
    return Prepared(examples, report, config, h, folder, cached)


def prompt_messages(ctx: TrainContext):
    """messages(example) with the FLORES task's prompt (tasks/flores.yaml), the one used to evaluate."""
    from tasks import load_task

    flores = next((t for t in ctx.eval_tasks if t.name == "flores"), None) or load_task("flores", ctx.data)
    return (lambda ex: flores.messages(ex.doc(), [])), flores.cfg.prompt.chat


def finish(prep: Prepared, method: str, kind: str, extra: dict | None = None, report: dict | None = None) -> Artifact:
    """Write the manifest (main process only, once every process is done; the others then read it).

    `extra` goes to the manifest only; `report` joins the artifact's config, which results.json records."""
    from accelerate import PartialState

    state = PartialState()  # the trainer's (multi-process under `accelerate launch`), else a single process
    state.wait_for_everyone()
    if state.is_main_process:
        config = {**prep.config, "training_data": prep.data_report, **(report or {})}
        art = save_artifact(prep.dir, method, kind, config, prep.config_hash, extra or {})
        print(f"[{method}] artifact saved: {prep.dir}")
    state.wait_for_everyone()
    return art if state.is_main_process else load_artifact(prep.dir)
