"""The CLI subcommands: argument translation only (parsing lives in harness/cli.py, the work in harness/api.py
and the modules it calls)."""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.data import DataSource
from harness.errors import HarnessError
from harness.io import existing_dir
from harness.rundir.layout import results_file


def dispatch(args: argparse.Namespace) -> int:
    return {"run": cmd_run, "ls": cmd_ls, "validate": cmd_validate, "score": cmd_score,
            "judge": cmd_judge, "train": cmd_train, "leaderboard": cmd_leaderboard,
            "pack": cmd_pack, "unpack": cmd_pack, "study": cmd_study, "compare": cmd_compare,
            "ablation": cmd_ablation, "refresh-report": cmd_refresh_report}[args.command](args)


def backend_settings(args: argparse.Namespace):
    from harness.loading import BackendConfig

    return BackendConfig(dtype=args.dtype, device=args.device, batch_size=args.batch_size, threads=args.threads,
                         trust_remote_code=args.trust_remote_code, scheduler=args.scheduler,
                         decode_attention=getattr(args, "decode_attention", "sdpa"),
                         prepack=getattr(args, "prepack", "auto"))


def run_spec(args: argparse.Namespace):
    """The RunSpec of `harness run` / `harness train` arguments."""
    from harness.config import parse_sets
    from mt_harness.api import RunSpec

    spec = RunSpec(tasks=_split(args.tasks), method=args.method, model=args.model, langs=_split(args.langs),
                   method_config=args.method_config, budget=args.budget, seed=args.seed, data_dir=args.data_dir,
                   drop_overlap=args.drop_overlap, settings=backend_settings(args),
                   method_options=parse_sets(args.set))
    if args.command == "run":
        spec.limit, spec.output, spec.backend, spec.chunk_size = args.limit, args.output, args.backend, args.chunk_size
        spec.tensor_parallel_size, spec.data_parallel_size = args.tensor_parallel_size, args.data_parallel_size
        spec.comet_model, spec.lmeval_include, spec.drift_ref = args.comet_model, args.lmeval_include, args.drift_ref
        spec.judge = judge_spec(args)
    return spec


def cmd_run(args: argparse.Namespace) -> int:
    from harness import lmeval
    from mt_harness import api
    from mt_harness.report import print_run_table

    done = api.run(run_spec(args))
    if done is None:  # a non-main process of a distributed training
        return 0
    print_run_table(done.results, done.harness_tasks)
    lmeval.print_table(done.results, done.lmeval_tasks)
    print(f"\nresults: {results_file(done.out)}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    """Train (or find) a method's artifact without evaluating; guards against overlap with --tasks."""
    from mt_harness import api

    artifact = api.train(run_spec(args))
    print(f"artifact: {artifact.path} (kind {artifact.kind}, config hash {artifact.config_hash}, hash {artifact.hash})")
    return 0


def cmd_study(args: argparse.Namespace) -> int:
    from mt_harness import api

    done = api.study(args.study, args.executor, args.workers, args.threads, args.address, args.output, args.dry_run,
                     args.rerun_stale, [u for u in (args.only or "").split(",") if u] or None)
    if not args.dry_run:
        print(f"{len(done.ran)} phase(s) run; cost: {done.cost}" + "".join(f"\nwrote {p}" for p in done.leaderboard))
    return 0


def cmd_leaderboard(args: argparse.Namespace) -> int:
    from mt_harness import api
    from leaderboard.collect import nested_boards

    for folder in nested_boards([Path(p) for p in args.paths]):
        print(f"skipped {folder}: it holds its own leaderboard (name it to include its runs)")
    tables, written = api.leaderboard(args.paths, args.output, args.resamples, args.bootstrap_seed, args.versus)
    for t in tables:
        print(f"{t.title}: {len(t.rows)} rows, {len(t.columns)} columns")
    for path in written:
        print(f"wrote {path}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    """harness compare BASELINE CANDIDATE: exit 0 ok, 1 regressed (2, not comparable, via HarnessError)."""
    import json
    import os

    from mt_harness import api
    from leaderboard import compare, compare_report

    cfg = compare.CompareConfig(gate=_split(args.gate), tolerance=compare.parse_tolerance(args.tolerance),
                                alpha=args.alpha, exact=_split(args.exact), resamples=args.resamples, seed=args.seed,
                                tasks=_split(args.tasks), worst=args.worst)
    result = api.compare(args.baseline, args.candidate, cfg)
    print(json.dumps(compare_report.to_dict(result), indent=1) if args.json == "-" else compare_report.text(result))
    compare_report.write_reports(result, args.json, args.junit, os.environ.get("GITHUB_STEP_SUMMARY") or None)
    return result.exit_code


def cmd_refresh_report(args: argparse.Namespace) -> int:
    """harness refresh-report OUT...: the method report of each run's artifact into its results.json."""
    from mt_harness.api import refresh_report

    for out in args.outputs:
        print(f"{out}: {refresh_report(out)}")
    return 0


def cmd_pack(args: argparse.Namespace) -> int:
    """harness pack / unpack OUT...: every run folder is checked before any is changed."""
    from harness.rundir.pack import pack, unpack
    from harness.rundir.read import read_results

    for out in args.outputs:
        path = results_file(out)
        if not path.is_file() or read_results(path) is None:
            raise HarnessError(f"{path}: not a results.json written by `harness run`; give run folders")
    convert = pack if args.command == "pack" else unpack
    for out in args.outputs:
        changed = convert(out)
        print(f"{out}: {len(changed)} file(s) {args.command}ed" + "".join(f"\n  {c}" for c in changed))
    return 0


def cmd_ls(args: argparse.Namespace) -> int:
    if args.what == "tasks":
        from tasks import load_task_config, task_names

        for name in task_names():
            cfg, _ = load_task_config(name)
            print(f"{name:10s} {len(cfg.languages):3d} languages  {' '.join(cfg.description.split())[:90]}")
        from tasks import task_groups

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
        from methods import REGISTRY, method_class

        for name in REGISTRY:
            print(f"{name:10s} {method_class(name).description}")
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from harness.validate import validate_task
    from tasks import expand_groups, load_task, task_names

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
    from mt_harness import api
    from mt_harness.report import print_run_table

    results = api.score(args.output, args.data_dir, args.comet_model)
    print_run_table(results, [n for n in results["tasks"] if not n.startswith("lmeval:")])
    return 0


def cmd_ablation(args: argparse.Namespace) -> int:
    from mt_harness.ablation import ablation_table

    table = ablation_table(args.folder, args.reference, args.task, _split(args.metrics), args.resamples, args.seed)
    print(table.markdown())
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
    from mt_harness import api
    from harness.loading import BackendConfig, set_threads
    from mt_harness.report import print_run_table

    out = existing_dir(args.output, "harness judge:")
    set_threads(args.threads)
    backend_cfg = BackendConfig(dtype=args.dtype, device=args.device, batch_size=args.batch_size, threads=args.threads)
    results = api.judge(out, judge_spec(args), args.data_dir, backend_cfg, _split(args.tasks) or None)
    print_run_table(results, list(results["tasks"]))
    print(f"\nresults: {results_file(out)}")
    return 0


def _split(value: str | None) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()] if value else []
