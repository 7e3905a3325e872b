"""What a run evaluates and who is evaluated: `EvalContext` (lands in results.json, decides the run.json
fingerprint) and `select_docs` (the documents a task's run covers). Both are needed by every writer of a run
folder (the runner, the log-likelihood scorer, the judge/drift phase, `harness score`), so they live with the
run folder's owner rather than in any one of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from harness.io import stable_hash
from harness.task import config_dict, Task


@dataclass
class EvalContext:
    """Who is being evaluated and how; everything here lands in results.json."""

    out_dir: Path
    method: dict  # {"name": ..., "config": ..., "artifact": {...}}
    model: dict  # identity of the base model
    seed: int = 0
    limit: int | None = None
    chunk_size: int = 64
    extra: dict = field(default_factory=dict)

    def fingerprint(self, task: Task, backend_settings: dict) -> dict:
        """The run.json fingerprint of this task's samples (`run_fingerprint`)."""
        return run_fingerprint(self, stable_hash(config_dict(task)), backend_settings.get("dtype"),
                               backend=backend_settings.get("backend"), seed=self.seed)


def run_fingerprint(ctx: EvalContext, task_config: str, dtype: str | None, **fields) -> dict:
    """What produced a task folder's samples: model, method artifact, task config hash, dtype, then `fields` in
    the order given (the runner: backend, seed; lm-eval: seed, lm_eval_version). Resuming needs all equal."""
    return {
        "model_sha256": ctx.model.get("weights_sha256"),
        "model_name": ctx.model.get("name"),
        "method": ctx.method.get("name"),
        "artifact": ctx.method.get("artifact", {}).get("hash"),
        "task_config": task_config,
        "dtype": dtype,
        **fields,
    }


def select_docs(task: Task, limit: int | None) -> list[dict]:
    """The documents evaluated: the first `limit` of each subset (else the task's group default, else all)."""
    limit = limit or task.doc_limit
    docs = []
    for subset in task.selected:
        sub = task.docs(subset)
        docs.extend(sub[:limit] if limit else sub)
    ids = [d["id"] for d in docs]
    if len(set(ids)) != len(ids):
        raise RuntimeError(f"task {task.name}: document ids are not unique")
    return docs
