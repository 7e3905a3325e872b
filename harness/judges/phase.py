"""The post-generation phase of judge-using tasks: judging (now or later) and judge-free drift (MT-Bench, AlpacaEval).

`harness run` calls `PostPhase.after_generation` for each task after its samples are complete;
`harness judge OUT` (mt_harness.api.judge) calls `PostPhase.judge_task` on a finished run folder (no generation, no
evaluated model). Tasks opt in with the class attribute `uses_judge = True` and implement
`judge_records(records, judge, spec, cache)`; tasks with `drift_capable = True` get drift. A task reads
drift.json from its run folder, `task.context.out_dir` (harness.task.RunContext, set by the command).
"""

from __future__ import annotations

import time
from pathlib import Path

from harness.errors import HarnessError
from harness.io import JsonlStore
from harness.judges import JudgeSpec, JudgmentCache, make_judge
from harness.judges.drift_ref import DriftPlan, plan_drift
from harness.rundir.context import select_docs
from harness.rundir.layout import samples_file
from harness.rundir.read import read_drift, read_fingerprint, read_samples, samples_sha256
from harness.rundir.write import open_judgments, open_samples, write_drift, write_results, write_samples


class PostPhase:
    """What happens to a task's complete samples: drift against the base model's answers (drift-capable tasks;
    `drift_ref`, else the run's own samples when the evaluated model is the base, else the base model's answers,
    generated once and cached by harness.judges.base_answers) and judging (`spec`)."""

    def __init__(self, spec: JudgeSpec | None, backend_cfg=None, drift_ref: str | None = None):
        if spec is not None:
            spec.validate()
        self.spec = spec
        self.backend_cfg = backend_cfg
        self.drift_ref = drift_ref
        self._judge = None

    @property
    def judge(self):
        if self._judge is None and self.spec is not None:
            self._judge = make_judge(self.spec, self.backend_cfg)
        return self._judge

    def judge_task(self, task, store: JsonlStore, ids: list[str]) -> None:
        if self.spec is None or not task.uses_judge:
            return
        records = [store.records[i] for i in ids]
        cache = JudgmentCache(open_judgments(store.path.parent))
        task.judge(records, self.judge, self.spec, cache)
        write_samples(store.path, store.records.values())

    def plan(self, task, backend, ectx) -> tuple[DriftPlan | None, tuple | None]:
        """Where the base model's answers for `task`'s drift come from, and the base (model, tokenizer) when loading
        them already loaded it; (None, None) for tasks without drift."""
        if not task.drift_capable:
            return None, None
        evaluated_is_base = ectx.method.get("artifact", {}).get("kind") == "none"
        drift = plan_drift(self.drift_ref, task.name, samples_file(ectx.out_dir, task.name), evaluated_is_base)
        if drift is not None:
            return drift, None
        from harness.judges.base_answers import ensure_base_answers  # a trained method without --drift-ref

        cached = ensure_base_answers(task, ectx, self.backend_cfg, backend.settings().get("dtype"))
        return cached.plan, cached.base

    def after_generation(self, task, backend, ectx) -> dict | None:
        """Drift and judging for a task whose samples are complete; returns new results or None."""
        from harness.runner import aggregate

        if not task.uses_judge:
            return None
        drift, base = self.plan(task, backend, ectx)
        t0 = time.time()
        store = open_samples(ectx.out_dir, task.name)
        ids = [d["id"] for d in select_docs(task, ectx.limit)]
        if drift is not None:
            compute_drift(task, store, ids, backend, ectx, drift, self.backend_cfg, base)
        self.judge_task(task, store, ids)
        return write_results(ectx, task, backend.settings(), aggregate(task, store, ectx.limit), time.time() - t0)


def drift_metrics(run_dir: Path | None, task_name: str, records: list[dict]) -> dict:
    """The drift fields of a task's metrics, read from <run>/<task>/drift.json (or why there are none)."""
    data = read_drift(run_dir, task_name) if run_dir else None
    if data is None:
        return {"drift": "not computed: no drift.json (computed by `harness run`; see --drift-ref)"}
    if "reason" in data:
        return {"drift": f"not computed: {data['reason']}"}
    if sorted(data.get("ids", [])) != sorted(r["id"] for r in records):
        return {"drift": "not computed: drift.json covers other documents; rerun `harness run` with --drift-ref"}
    return {"drift_nll": data["drift_nll"], "drift_kl": data.get("kl_base_eval"),
            "drift": {k: v for k, v in data.items() if k not in ("ids", "per_id")}}


def compute_drift(task, store: JsonlStore, ids: list[str], backend, ectx, plan: DriftPlan, backend_cfg,
                base=None) -> None:
    """Compute drift for the selected documents and write <out>/<task>/drift.json (or the reason it is absent).
    `base` = (model, tokenizer) of the base model when already loaded. drift.json keeps per-document sums
    (`per_id`: [Σ nll eval, Σ nll base, answer tokens, Σ KL(base||eval)]) so the leaderboard can resample documents
    (runs written before the 4th element existed have three)."""
    from tqdm.auto import tqdm

    from harness.metrics.drift import drift

    def write(data: dict) -> None:
        write_drift(ectx.out_dir, task.name, data)

    if plan.ref is None:
        write({"reason": plan.reason})
        return
    fp = read_fingerprint(plan.ref.parent)
    base_sha = ectx.model.get("weights_sha256")
    if fp.get("artifact") or (fp.get("model_sha256") and base_sha and fp["model_sha256"] != base_sha):
        write({"reason": f"{plan.ref} was not made by the untouched base model "
                                           f"({fp.get('model_name')}, method {fp.get('method')})"})
        return
    ref_records = read_samples(plan.ref)
    common = [i for i in ids if i in ref_records]
    if not common:
        write({"reason": f"{plan.ref} has none of the {len(ids)} selected questions"})
        return
    owners = [i for i in common for _ in ref_records[i]["prompts"]]
    pairs = [(p, a) for i in common for p, a in zip(ref_records[i]["prompts"], ref_records[i]["raw"])]
    from harness.backends.factory import require

    require(backend, "hf_weights", f"task {task.name} (drift phase)",  # checked before the run by Method.check_run
            "drift scores the base model's answers with the evaluated weights; use --backend transformers")
    if ectx.method.get("artifact", {}).get("kind") == "none":  # the evaluated model is the base model
        base_model, base_tok = backend.model, backend.tok
    elif base is not None:
        base_model, base_tok = base
    else:
        from harness.backends.factory import build_backend

        base_backend = build_backend("transformers", None, None, ectx.model["path"], backend_cfg)
        base_model, base_tok = base_backend.model, base_backend.tok
    bar = tqdm(total=len(pairs), desc=f"{task.name} drift", unit="answer", dynamic_ncols=True)
    try:
        result = drift(backend.model, base_model, base_tok, pairs, eval_tok=backend.tok, progress=bar)
    except HarnessError as e:
        write({"reason": str(e)})
        return
    finally:
        bar.close()
    per_id: dict[str, list[float]] = {}
    for owner, (e, b, n, kl) in zip(owners, result.pop("per_pair")):
        acc = per_id.setdefault(owner, [0.0, 0.0, 0, 0.0])
        acc[0], acc[1], acc[2], acc[3] = acc[0] + e, acc[1] + b, acc[2] + n, acc[3] + kl
    result.update({"ref": str(plan.ref), "ref_sha256": samples_sha256(plan.ref), "n_missing": len(ids) - len(common),
                   "ids": ids, "base_model": ectx.model.get("name"), "base_weights_sha256": base_sha,
                   "per_id": per_id})
    write(result)
