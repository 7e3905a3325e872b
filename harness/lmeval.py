"""`--tasks lmeval:<task>`: run an lm-evaluation-harness task on the same model or method artifact.

The run's loaded backend (`.model`, `.tok`) is wrapped in lm-eval's `HFLM` and evaluated with
`lm_eval.simple_evaluate(..., log_samples=True)`, so lm-eval's own prompts, filters and metrics
apply unchanged. Per-sample logs go to `<out>/lmeval_<task>/samples.jsonl` (our record fields
where they exist: id, subset, prompts, prompt_hash, raw, outputs, reference, scores, plus lm-eval's
doc and hashes); metrics are merged into results.json under `tasks["lmeval:<task>"]` with the
lm-eval version and a hash of the task configs. Task configs may hold functions (`!function`),
filters or regexes: they are recorded by qualified name and source hash (harness.lmeval_requests.jsonable),
so results are always written and the config hash is the same from one process to the next.

Every answer lm-eval asks of the model is saved as it is produced in `<out>/lmeval_<task>/requests.jsonl`
(keyed by the run's model/method/task-config fingerprint, see harness.lmeval_requests): a crash or a
failed write loses nothing already answered, and rerunning the same command answers those requests
from the file and asks the model only for the rest.

Offline, hub-backed zoo tasks (e.g. `lmeval:arc_easy`) fail with a one-line error; a task YAML
of your own with `dataset_path: json` and `dataset_kwargs: {data_files: ...}` in a folder given
by `--lmeval-include DIR` runs on local data.
"""

from __future__ import annotations

import importlib.metadata as md
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from harness.errors import HarnessError
from harness.io import sha256_file, sha256_text, stable_hash
from harness.lmeval_requests import RequestLog, install, jsonable
from harness.rundir.context import run_fingerprint
from harness.rundir.layout import SAMPLES_FILE, samples_file
from harness.rundir.write import check_fingerprint, merge_entry, open_lmeval_requests, write_samples

PREFIX = "lmeval:"


def is_lmeval(name: str) -> bool:
    return name.startswith(PREFIX)


@dataclass
class LmevalTask:
    name: str  # "lmeval:<task>", the key in results.json
    task: str  # lm-eval's task (or group) name
    include: str | None
    loaded: dict = field(default_factory=dict)  # TaskManager.load() output: tasks, groups, group_map
    manager: Any = None  # the lm-eval TaskManager that built it (simple_evaluate would index the zoo again)

    @property
    def folder(self) -> str:
        return "lmeval_" + self.task.replace("/", "_")


def load(names: list[str], include: str | None) -> list[LmevalTask]:
    """Resolve and load `lmeval:` tasks before any model is loaded, so a bad name or an unreachable
    dataset is a one-line error at once."""
    if not names:
        return []
    from lm_eval.tasks import TaskManager

    if include is not None and not Path(include).is_dir():
        raise HarnessError(f"--lmeval-include {include}: not a folder of lm-eval task YAMLs")
    tasks = [n[len(PREFIX):] for n in names]
    if any(not t for t in tasks):
        raise HarnessError("--tasks: 'lmeval:' needs a task name, e.g. lmeval:arc_easy")
    manager = None
    if include is not None:  # indexing lm-eval's whole zoo takes ~20 s on CPU: try the include folder alone first
        own = TaskManager(include_path=include, include_defaults=False)
        if all(t in own.all_tasks for t in tasks):
            manager = own
    manager = manager or TaskManager(include_path=include)
    out = []
    for name, task in zip(names, tasks):
        if task not in manager.all_tasks:
            where = (f"lm-eval's task zoo or {include}" if include
                     else "lm-eval's task zoo (add --lmeval-include DIR for your own YAMLs)")
            raise HarnessError(f"--tasks {name}: no task {task!r} in {where}; list them with `lm-eval ls tasks`")
        out.append(LmevalTask(name, task, include, _load_one(manager, name, task), manager))
    return out


def _load_one(manager, name: str, task: str) -> dict:
    try:
        return manager.load([task])
    except (ConnectionError, OSError) as e:
        msg = " ".join(str(e).split())
        hint = ("the hub is offline (HF_HUB_OFFLINE=1); " if "Offline" in msg or "reach" in msg else "")
        raise HarnessError(f"--tasks {name}: lm-eval could not load its dataset: {msg[:200]}; {hint}run it where the "
                           f"dataset is cached or reachable, or write a task YAML with dataset_path: json and "
                           f"local data_files and pass its folder with --lmeval-include") from None
    except Exception as e:  # lm-eval raises plain ValueError/KeyError/yaml errors for broken task configs
        msg = " ".join(str(e).split())
        raise HarnessError(f"--tasks {name}: lm-eval could not build the task: "
                           f"{type(e).__name__}: {msg[:300]}") from None


def evaluate(lt: LmevalTask, backend, ctx) -> dict:
    """Run one lm-eval task on `backend` (an HFBackend: .model, .tok, .cfg) and merge it into results.json."""
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM

    t0 = time.time()
    task_dir = ctx.out_dir / lt.folder
    configs = jsonable({n: t.dump_config() for n, t in lt.loaded["tasks"].items()})
    config_hash = stable_hash(configs)
    fingerprint = run_fingerprint(ctx, config_hash, backend.settings().get("dtype"), seed=ctx.seed,
                                  lm_eval_version=md.version("lm_eval"))  # no "backend": kept as older runs wrote it
    check_fingerprint(task_dir, fingerprint)
    from harness.backends.factory import require

    require(backend, "hf_weights", f"task {lt.name} (lm-eval bridge)",  # checked before the run by Method.check_run
            "lm-eval's HFLM wraps one transformers model; use --backend transformers")
    lm = HFLM(pretrained=backend.model, tokenizer=backend.tok, batch_size=backend.cfg.batch_size)
    log = RequestLog(open_lmeval_requests(task_dir), run_key=stable_hash(fingerprint))
    if log.repaired:
        tqdm.write(f"[{lt.name}] cut a torn last line from {log.path} (that request will be asked again)")
    if len(log):
        tqdm.write(f"[{lt.name}] {len(log)} answers saved by an earlier run in {log.path}: reusing them")
    install(lm, log)
    seed = ctx.seed
    try:
        res = simple_evaluate(model=lm, tasks=_top_groups(lt.loaded) or list(lt.loaded["tasks"].values()),
                              task_manager=lt.manager, limit=ctx.limit, log_samples=True, random_seed=seed,
                              numpy_random_seed=1234 + seed,
                              torch_random_seed=1234 + seed, fewshot_random_seed=1234 + seed)
    finally:
        log.close()
    if res is None:
        raise RuntimeError(f"{lt.name}: lm-eval returned no results (not rank 0?)")
    samples_path = samples_file(ctx.out_dir, lt.folder)
    records = [jsonable(_record(leaf, s)) for leaf, rows in res.get("samples", {}).items() for s in rows]
    write_samples(samples_path, records)
    leaves = list(lt.loaded["tasks"])
    metrics = {leaf: _numeric(res["results"].get(leaf, {})) for leaf in leaves}
    groups = {g: _numeric(res["results"][g]) for g in lt.loaded.get("groups", {}) if g in res["results"]}
    summary = groups.get(lt.task) or (metrics[leaves[0]] if len(leaves) == 1 else {})
    entry = {
        "config": {"lmeval_task": lt.task, "include_path": lt.include, "apply_chat_template": False,
                   "num_fewshot": res.get("n-shot", {}), "limit": ctx.limit,
                   "task_configs": jsonable(res.get("configs", configs))},
        "config_hash": config_hash,
        "backend": {**backend.settings(), "wrapper": "lm_eval.models.huggingface.HFLM (pre-loaded model object)"},
        "metrics": metrics,
        "summary": summary,
        "groups": groups,
        "n_samples": len(records),
        "metadata": {"lm_eval_version": md.version("lm_eval"), "task_versions": res.get("versions", {}),
                     "higher_is_better": res.get("higher_is_better", {}), "n_samples": res.get("n-samples", {}),
                     "metric_names": "lm-eval's '<metric>,<filter>' keys; filter 'none' dropped"},
        "samples_file": f"{lt.folder}/{SAMPLES_FILE}",
        "samples_sha256": sha256_file(samples_path),
        "requests_file": f"{lt.folder}/requests.jsonl",
        "requests": {"answered_now": log.written, "reused": log.reused},
        "seconds": round(time.time() - t0, 2),
    }
    return merge_entry(ctx, lt.name, jsonable(entry))  # a task config may hold functions, filters, regexes


def _top_groups(loaded: dict) -> list:
    """Groups not contained in another group (passing them lets lm-eval aggregate group scores)."""
    children = {c for kids in loaded.get("group_map", {}).values() for c in kids}
    return [g for name, g in loaded.get("groups", {}).items() if name not in children]


def _numeric(metrics: dict) -> dict:
    out = {}
    for key, value in metrics.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or key == "sample_len":
            continue
        metric, _, filt = key.partition(",")
        out[metric if filt in ("", "none") else f"{metric},{filt}"] = value
    return out


def _record(leaf: str, s: dict[str, Any]) -> dict:
    args = s.get("arguments") or {}
    items = args.values() if isinstance(args, dict) else args
    prompts = []
    for a in items:  # each request's first argument is its context (prompt)
        first = next(iter(a.values())) if isinstance(a, dict) else (a[0] if isinstance(a, (list, tuple)) else a)
        prompts.append(str(first))
    metric_names = [k for k in s if k not in _SAMPLE_KEYS]
    filt = s.get("filter")  # lm-eval logs a document once per filter: keep ids unique
    return {
        "id": f"{leaf}/{s.get('doc_id')}" + (f"/{filt}" if filt not in (None, "none") else ""),
        "subset": leaf,
        "prompts": prompts,
        "prompt_hash": s.get("prompt_hash") or sha256_text("\x1e".join(prompts))[:16],
        "raw": s.get("resps"),
        "outputs": s.get("filtered_resps"),
        "filter": s.get("filter"),
        "reference": s.get("target"),
        "scores": {k: s[k] for k in metric_names},
        "doc": s.get("doc"),
        "doc_hash": s.get("doc_hash"),
        "target_hash": s.get("target_hash"),
    }


_SAMPLE_KEYS = {"doc_id", "doc", "target", "arguments", "resps", "filtered_resps", "filter", "metrics", "doc_hash",
                "prompt_hash", "target_hash"}


def print_table(results: dict, names: list[str]) -> None:
    for name in names:
        entry = results["tasks"].get(name)
        if not entry:
            continue
        print(f"\n== {name} ({entry['n_samples']} samples, lm-eval {entry['metadata']['lm_eval_version']}) ==")
        for leaf, m in {**entry["metrics"], **entry.get("groups", {})}.items():
            shown = ", ".join(f"{k}={v:.4f}" for k, v in m.items() if "stderr" not in k)
            print(f"{leaf}: {shown}")
