"""Implementation of the CLI subcommands (argument parsing lives in harness/cli.py)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from harness.data import DataSource
from harness.errors import HarnessError


def dispatch(args: argparse.Namespace) -> int:
    return {"run": cmd_run, "ls": cmd_ls, "validate": cmd_validate, "score": cmd_score}[args.command](args)


def load_tasks(names: list[str], data: DataSource, langs: list[str]) -> list:
    from harness.task import load_task

    if not names:
        raise HarnessError("--tasks: give at least one task (see `harness ls tasks`)")
    if len(set(names)) != len(names):
        raise HarnessError(f"--tasks: {names} lists a task twice")
    tasks = [load_task(n, data) for n in names]
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
    return Path("results") / "runs" / f"{safe}__{method}" + (f"__limit{limit}" if limit else "")


def cmd_run(args: argparse.Namespace) -> int:
    from harness.backends.hf import BackendConfig, set_threads
    from harness.method import TrainContext
    from harness.models import DEFAULT_MODEL, resolve_model
    from harness.report import print_run_table
    from harness.runner import EvalContext, evaluate
    from methods import get_method

    if args.limit is not None and args.limit < 1:
        raise HarnessError("--limit: must be >= 1")
    data = DataSource.resolve(args.data_dir)
    method = get_method(args.method)
    tasks = load_tasks(_split(args.tasks), data, _split(args.langs))
    set_threads(args.threads)
    model_name = args.model or DEFAULT_MODEL
    model = resolve_model(model_name)
    out = Path(args.output) if args.output else default_output(model_name, method.name, args.limit)
    backend_cfg = BackendConfig(dtype=args.dtype, device=args.device, batch_size=args.batch_size,
                                threads=args.threads, trust_remote_code=args.trust_remote_code)
    cfg = method.Config()
    ctx = TrainContext(model=model, data=data, out_dir=out / "artifact", eval_tasks=tasks, seed=args.seed,
                       backend=backend_cfg)
    artifact = method.train(cfg, ctx)
    backend = method.backend(artifact, model, backend_cfg)
    ectx = EvalContext(out_dir=out, seed=args.seed, limit=args.limit,
                       method={"name": method.name, "config": artifact.config, "artifact": artifact.describe()},
                       model=model.identity())
    results = {}
    for task in tasks:
        results = evaluate(task, backend, ectx)
    print_run_table(results, [t.name for t in tasks])
    print(f"\nresults: {out / 'results.json'}")
    return 0


def cmd_ls(args: argparse.Namespace) -> int:
    if args.what == "tasks":
        from harness.task import load_task_config, task_names

        for name in task_names():
            cfg, _ = load_task_config(name)
            print(f"{name:10s} {len(cfg.languages):3d} languages  {' '.join(cfg.description.split())[:90]}")
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
    from harness.task import load_task, task_names
    from harness.validate import validate_task

    data = DataSource.resolve(args.data_dir)
    names = _split(args.tasks) or task_names()
    failures = 0
    for name in names:
        for line, ok in validate_task(load_task(name, data)):
            print(("ok    " if ok else "FAIL  ") + line)
            failures += not ok
    print(f"{failures} failure(s)")
    return 1 if failures else 0


def cmd_score(args: argparse.Namespace) -> int:
    from harness.io import JsonlStore, read_json
    from harness.report import print_run_table
    from harness.runner import EvalContext, aggregate, rescore, write_results
    from harness.task import load_task

    out = Path(args.output)
    results = read_json(out / "results.json")
    data = DataSource.resolve(args.data_dir)
    ctx = EvalContext(out_dir=out, method=results["method"], model=results["model"], seed=results["seed"],
                      limit=results["limit"])
    for name, entry in results["tasks"].items():
        task = load_task(name, data)
        task.select(entry["config"]["selected"])
        store = JsonlStore(out / entry["samples_file"])
        t0 = time.time()
        rescore(task, store)
        results = write_results(ctx, task, entry["backend"], aggregate(task, store, ctx.limit), time.time() - t0)
    print_run_table(results, list(results["tasks"]))
    return 0


def _split(value: str | None) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()] if value else []
