"""`harness` command line: run, ls, validate, score (and train, leaderboard as they land)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from harness.errors import HarnessError

EPILOG = "Data directory: --data-dir, else $HARNESS_DATA_DIR, else ./data or ../shared/data. Cache: $HARNESS_CACHE."


def _split(value: str | None) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()] if value else []


def add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=None, help="registry name, local HF directory or hub id (default: smollm2-135m-instruct)")
    p.add_argument("--data-dir", default=None, help="folder of local datasets (FLORES, MGSM, ...)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dtype", default="auto", help="auto (bf16 on GPUs and bf16-capable CPUs), float32, bfloat16, float16")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, mps")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: the cores this process may use)")
    p.add_argument("--trust-remote-code", action="store_true", help="allow model repos to run their own code")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="harness", description=__doc__, epilog=EPILOG)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="train (or reuse) a method's artifact, then evaluate it on tasks")
    run.add_argument("--method", default="base", help="method name (harness ls methods)")
    run.add_argument("--tasks", required=True, help="comma-separated task names (harness ls tasks)")
    run.add_argument("--langs", default=None,
                     help="comma-separated languages or pairs to keep, e.g. de-en,en-de for flores; "
                          "items that match no selected task are an error")
    run.add_argument("--limit", type=int, default=None, help="first N documents of each language/pair")
    run.add_argument("--output", default=None, help="results folder (default results/runs/<model>__<method>[__limitN])")
    add_common(run)

    ls = sub.add_parser("ls", help="list tasks, models or methods")
    ls.add_argument("what", choices=["tasks", "models", "methods"])

    val = sub.add_parser("validate", help="render one prompt per task and language; fail if a document field is missing")
    val.add_argument("--tasks", default=None, help="default: all tasks")
    val.add_argument("--data-dir", default=None)

    score = sub.add_parser("score", help="recompute metrics of a finished run from its samples (no model calls)")
    score.add_argument("output", help="a results folder written by harness run")
    score.add_argument("--data-dir", default=None)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from harness import commands

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return commands.dispatch(args)
    except HarnessError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished samples are saved; rerun the same command to resume", file=sys.stderr)
        return 130


def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


if __name__ == "__main__":
    sys.exit(main())
