"""Implementation of the CLI subcommands (argument parsing lives in harness/cli.py)."""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass
from pathlib import Path

from harness.data import DataSource
from harness.errors import HarnessError
from harness.io import existing_dir, writable_dir


def dispatch(args: argparse.Namespace) -> int:
    return {"run": cmd_run, "ls": cmd_ls, "validate": cmd_validate, "score": cmd_score,
            "judge": cmd_judge, "train": cmd_train, "leaderboard": cmd_leaderboard}[args.command](args)


def load_tasks(names: list[str], data: DataSource, langs: list[str]) -> list:
    from harness.task import expand_groups, load_task

    if not names:
        raise HarnessError("--tasks: give at least one task (see `harness ls tasks`)")
    expanded = expand_groups([n for n in names if not n.startswith("lmeval:")])  # lmeval: runs via harness.lmeval
    names = [n for n, _ in expanded]
    if len(set(names)) != len(names):
        raise HarnessError(f"--tasks: {names} lists a task twice")
    tasks = [load_task(n, data) for n in names]
    for task, (_, doc_limit) in zip(tasks, expanded):
        task.doc_limit = doc_limit  # a group's default subset size, used when --limit is not given
    if langs:
        used = set()
        for task in tasks:
            mine = [x for x in langs if _matches(task, x)]
            if mine:
                task.select(mine)
                used.update(mine)
        unused = [x for x in langs if x not in used]
        if unused and len(tasks) == 1:
            tasks[0].select(unused)  # raises the task's own explanation
        if unused:
            raise HarnessError(f"--langs: {unused[0]!r} matches none of the tasks {', '.join(names)}")
    for task in tasks:
        task.preflight()  # missing or misaligned files, metric dependencies (e.g. BLEU tokenizers) fail now,
                         # not after the model has loaded
    return tasks


def _matches(task, item: str) -> bool:
    if item in task.all_subsets():
        return True
    try:  # tasks that accept any well-formed item (e.g. any flores pair) say so by not raising
        probe = type(task).__new__(type(task))
        probe.__dict__.update(task.__dict__)
        probe.select([item])
        return True
    except HarnessError:
        return False


def default_output(model: str, method: str, limit: int | None) -> Path:
    safe = Path(model).name if Path(model).exists() else model.replace("/", "_")
    return Path("results") / "runs" / (f"{safe}__{method}" + (f"__limit{limit}" if limit else ""))


def use_comet(tasks: list, model: str | None) -> None:
    """Hand the `--comet-model` settings to tasks that report COMET (skipped, with the reason, when unusable)."""
    from harness.metrics.comet import Comet

    comet = Comet.configure(model)
    for task in tasks:
        if hasattr(task, "use_comet"):
            task.use_comet(comet)


def cmd_run(args: argparse.Namespace) -> int:
    from harness import lmeval
    from harness.report import print_run_table
    from harness.runner import EvalContext, evaluate

    if args.limit is not None and args.limit < 1:
        raise HarnessError("--limit: must be >= 1")
    if args.output:
        writable_dir(args.output, "--output")  # before any training or generation
    if args.chunk_size < 1:
        raise HarnessError("--chunk-size: must be >= 1")
    if getattr(args, "backend", "transformers") == "vllm":
        from harness.backends.vllm import require_vllm

        require_vllm()  # fail before any training
    apply_budget_caps(args)
    lm_tasks = lmeval.load([n for n in _split(args.tasks) if lmeval.is_lmeval(n)], args.lmeval_include)
    setup = prepare_training(args)
    method, tasks, model, model_name = setup.method, setup.tasks, setup.model, setup.model_name
    kind = getattr(args, "backend", "transformers")
    # before any work: the method refuses tasks/phases/backends it cannot serve (what the backend that
    # build_backend will return can do: log-likelihoods, transformers weights for drift and lm-eval)
    method.check_run(setup.cfg, tasks, lm_tasks, kind, model)
    use_comet(tasks, args.comet_model)
    out = writable_dir(args.output or default_output(model_name, method.name, args.limit), "--output")
    artifact = method.train(setup.cfg, setup.ctx)
    if int(os.environ.get("RANK", "0")) != 0:  # under `accelerate launch`: rank 0 alone evaluates
        print(f"[rank {os.environ['RANK']}] training done; evaluation runs on rank 0 only")
        return 0
    for task in tasks:
        method.prepare_task(task, artifact)
    from harness.backends.factory import build_backend

    vllm_cfg = vllm_config(args) if kind == "vllm" else None
    backend = build_backend(kind, method, artifact, model, setup.backend_cfg, vllm_cfg)
    ectx = EvalContext(out_dir=out, seed=args.seed, limit=args.limit, chunk_size=args.chunk_size,
                       method={"name": method.name, "config": artifact.config, "artifact": artifact.describe()},
                       model=model.identity())
    from harness.judges.phase import PostPhase, attach, plan_drift

    attach(tasks, out)
    post = PostPhase(judge_spec(args), setup.backend_cfg)
    results = {}
    for task in tasks:
        results = evaluate(task, backend, ectx)
        drift, base = None, None
        if getattr(task, "drift_capable", False):
            drift = plan_drift(args.drift_ref, task.name, out / task.name / "samples.jsonl", artifact.kind == "none")
            if drift is None:  # a trained method without --drift-ref: the base model's answers, cached
                from harness.judges.base_answers import ensure_base_answers

                cached = ensure_base_answers(task, ectx, setup.backend_cfg, backend.settings().get("dtype"))
                drift, base = cached.plan, cached.base
        results = post.after_generation(task, backend, ectx, drift, base) or results
    for lt in lm_tasks:
        results = lmeval.evaluate(lt, backend, ectx)
    print_run_table(results, [t.name for t in tasks])
    lmeval.print_table(results, [lt.name for lt in lm_tasks])
    print(f"\nresults: {out / 'results.json'}")
    return 0


def vllm_config(args: argparse.Namespace):
    from harness.backends.vllm import VLLMConfig

    return VLLMConfig(dtype=args.dtype, tensor_parallel_size=args.tensor_parallel_size,
                      data_parallel_size=args.data_parallel_size, trust_remote_code=args.trust_remote_code,
                      seed=args.seed)


def cmd_ls(args: argparse.Namespace) -> int:
    if args.what == "tasks":
        from harness.task import load_task_config, task_names

        for name in task_names():
            cfg, _ = load_task_config(name)
            print(f"{name:10s} {len(cfg.languages):3d} languages  {' '.join(cfg.description.split())[:90]}")
        from harness.task import task_groups

        for name, group in task_groups().items():
            members = ", ".join(f"{m} ({n or 'all'})" for m, n in group["members"].items())
            print(f"{name:10s} group: {members}")
    elif args.what == "models":
        from harness.models import list_models

        for m in list_models():
            flag = "cached" if m["cached"] else "not cached"
            print(f"{m['name']:24s} {m['hub_id']:40s} {flag:10s} {m['description']}")
        print("Any local HF model directory or hub id also works as --model.")
    else:
        from methods import REGISTRY

        for name, cls in REGISTRY.items():
            print(f"{name:10s} {cls.description}")
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from harness.task import expand_groups, load_task, task_names
    from harness.validate import validate_task

    data = DataSource.resolve(args.data_dir)
    names = [n for n, _ in expand_groups(_split(args.tasks))] or task_names()
    failures = 0
    for name in names:
        for line, ok in validate_task(load_task(name, data)):
            print(("ok    " if ok else "FAIL  ") + line)
            failures += not ok
    print(f"{failures} failure(s)")
    return 1 if failures else 0


def cmd_score(args: argparse.Namespace) -> int:
    from harness.config import from_dict
    from harness.io import JsonlStore, read_json, remove_stale_tmp
    from harness.metrics.comet import Comet
    from harness.report import print_run_table
    from harness.runner import EvalContext, aggregate, rescore, write_results
    from harness.task import load_task, task_from_saved_config, task_names

    out = existing_dir(args.output, "harness score:")
    results = read_json(out / "results.json")
    for folder in (out, *(out / name for name in results["tasks"])):
        remove_stale_tmp(folder)  # from a run killed mid atomic write
    data = DataSource.resolve(args.data_dir)
    ctx = EvalContext(out_dir=out, method=results["method"], model=results["model"], seed=results["seed"],
                      limit=results["limit"])
    comet = Comet.configure(args.comet_model)
    for name, entry in results["tasks"].items():
        if name.startswith("lmeval:"):  # scored by lm-eval itself; nothing to recompute here
            continue
        if name in task_names():
            task = load_task(name, data)
        else:  # a task YAML given to `run` by path: rebuilt from the config saved in results.json
            task = task_from_saved_config(entry["config"], data, f"{out}/results.json: tasks.{name}.config")
        if hasattr(task, "use_comet"):
            task.use_comet(comet)
        task.select(entry["config"]["selected"])
        task.options = from_dict(type(task.options), entry["config"]["options"], f"{out}/results.json: {name}.options")
        task.run_dir = out  # judge-using tasks read drift.json from the run folder
        task.doc_limit = entry.get("doc_limit")
        store = JsonlStore(out / entry["samples_file"])
        t0 = time.time()
        rescore(task, store)
        results = write_results(ctx, task, entry["backend"], aggregate(task, store, ctx.limit), time.time() - t0)
    print_run_table(results, [n for n in results["tasks"] if not n.startswith("lmeval:")])
    return 0


def judge_spec(args: argparse.Namespace):
    """The --judge* options as a JudgeSpec, or None when no judge is configured."""
    from harness.judges import JudgeSpec

    if not getattr(args, "judge", None):
        for flag in ("judge_model", "judge_url", "judge_key_env"):
            if getattr(args, flag, None):
                raise HarnessError(f"--{flag.replace('_', '-')} given without --judge hf|openai")
        return None
    return JudgeSpec(kind=args.judge, model=args.judge_model, url=args.judge_url, key_env=args.judge_key_env,
                     k=args.judge_k, temperature=args.judge_temperature, max_new_tokens=args.judge_max_tokens)


def cmd_judge(args: argparse.Namespace) -> int:
    from harness.judges.phase import judge_saved_run
    from harness.loading import BackendConfig, set_threads
    from harness.report import print_run_table

    out = existing_dir(args.output, "harness judge:")
    set_threads(args.threads)
    backend_cfg = BackendConfig(dtype=args.dtype, device=args.device, batch_size=args.batch_size, threads=args.threads)
    results = judge_saved_run(out, judge_spec(args), DataSource.resolve(args.data_dir), backend_cfg,
                              _split(args.tasks) or None)
    print_run_table(results, list(results["tasks"]))
    print(f"\nresults: {out / 'results.json'}")
    return 0


def _split(value: str | None) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()] if value else []


# Budget profiles: run caps here, method settings in methods/<name>/recipes/<budget>.yaml.
BUDGETS = {"small": {"limit": 8, "langs": "de-en,en-de"}, "full": {}}


def apply_budget_caps(args: argparse.Namespace) -> None:
    """`--budget small`: at most 8 documents per subset, flores de-en,en-de unless --limit/--langs say otherwise."""
    caps = BUDGETS.get(getattr(args, "budget", None) or "full", {})
    if "limit" in caps:
        args.limit = min(args.limit, caps["limit"]) if args.limit else caps["limit"]
    if "langs" in caps and not args.langs:
        args.langs = caps["langs"]


def load_method_config(method, config_file: str | None, budget: str | None):
    """Defaults <- methods/<name>/recipes/<budget>.yaml (if any) <- --method-config FILE (strict)."""
    from harness.config import from_dict, load_yaml, to_dict
    from methods import method_dir

    merged, where = to_dict(method.Config()), f"method {method.name}"
    sources = []
    if budget and budget != "full":
        recipe = method_dir(method.name) / "recipes" / f"{budget}.yaml"
        if recipe.exists():
            sources.append(recipe)
    if config_file:
        if not Path(config_file).is_file():
            raise HarnessError(f"--method-config {config_file}: file not found")
        sources.append(Path(config_file))
    for src in sources:
        merged, where = _deep_merge(merged, load_yaml(src) or {}), str(src)
    return from_dict(method.Config, merged, where)


def _deep_merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


@dataclass
class Setup:
    method: object
    tasks: list
    model_name: str
    model: object  # harness.models.ResolvedModel
    backend_cfg: object  # harness.loading.BackendConfig
    cfg: object  # the method's config dataclass
    ctx: object  # harness.method.TrainContext


def prepare_training(args: argparse.Namespace) -> Setup:
    """Resolve data, method, tasks, model and configs shared by `run` and `train` (cheap checks first)."""
    from harness.loading import BackendConfig, set_threads
    from harness.method import TrainContext
    from harness.models import DEFAULT_MODEL, resolve_model
    from harness.training.artifacts import artifacts_root
    from methods import get_method

    writable_dir(artifacts_root(), "artifact folder ($HARNESS_CACHE/artifacts)")
    data = DataSource.resolve(args.data_dir)
    method = get_method(args.method)
    tasks = load_tasks(_split(args.tasks), data, _split(args.langs))
    cfg = load_method_config(method, args.method_config, args.budget)
    set_threads(args.threads)
    model_name = args.model or DEFAULT_MODEL
    model = resolve_model(model_name)
    backend_cfg = BackendConfig(dtype=args.dtype, device=args.device, batch_size=args.batch_size,
                                threads=args.threads, trust_remote_code=args.trust_remote_code,
                                scheduler=args.scheduler)
    ctx = TrainContext(model=model, data=data, out_dir=artifacts_root(), eval_tasks=tasks, seed=args.seed,
                       backend=backend_cfg, allow_overlap=args.drop_overlap)
    return Setup(method, tasks, model_name, model, backend_cfg, cfg, ctx)


def cmd_train(args: argparse.Namespace) -> int:
    """Train (or find) a method's artifact without evaluating; guards against overlap with --tasks."""
    setup = prepare_training(args)
    artifact = setup.method.train(setup.cfg, setup.ctx)
    print(f"artifact: {artifact.path} (kind {artifact.kind}, config hash {artifact.config_hash}, hash {artifact.hash})")
    return 0


def cmd_leaderboard(args: argparse.Namespace) -> int:
    from leaderboard import make_leaderboard

    tables, written = make_leaderboard([Path(p) for p in args.paths], Path(args.output), args.resamples,
                                       args.bootstrap_seed)
    for t in tables:
        print(f"{t.title}: {len(t.rows)} rows, {len(t.columns)} columns")
    for path in written:
        print(f"wrote {path}")
    return 0
