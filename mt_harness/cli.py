"""`harness` command line: run, ls, validate, score (and train, leaderboard as they land)."""

from __future__ import annotations

import argparse
import os
import sys

from harness.errors import HarnessError

EPILOG = "Data directory: --data-dir, else $HARNESS_DATA_DIR, else ./data or ../shared/data. Cache: $HARNESS_CACHE."


def add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=None,
                   help="registry name, local HF directory or hub id (default: smollm2-135m-instruct)")
    p.add_argument("--data-dir", default=None, help="folder of local datasets (FLORES, MGSM, ...)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dtype", default="auto",
                   help="auto (bf16 on GPUs and bf16-capable CPUs), float32, bfloat16, float16")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, mps")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--scheduler", default="auto", choices=["auto", "continuous", "static"],
                   help="transformers backend batching: continuous refills finished rows; static keeps fixed "
                        "batches; auto = continuous in float32, static in bf16/fp16 (bit-identical to a plain "
                        "generate loop)")
    p.add_argument("--decode-attention", default="sdpa", choices=["sdpa", "matmul"],
                   help="transformers backend: attention of single-token decode steps; matmul is faster on CPU but "
                        "not bit-identical to sdpa in bf16 (default sdpa)")
    p.add_argument("--prepack", default="auto", choices=["auto", "all", "off"],
                   help="transformers backend on CPU: linear weights pre-packed for oneDNN (one extra copy of the "
                        "weights). auto (default): bf16 weights, bit-identical outputs, faster decoding; all: float32 "
                        "weights too (faster, not bit-identical to plain float32); off: plain F.linear")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: the cores this process may use)")
    p.add_argument("--trust-remote-code", action="store_true", help="allow model repos to run their own code")


def add_judge(p: argparse.ArgumentParser, required: bool = False) -> None:
    g = p.add_argument_group("judge (mtbench scores, optional safety classification)")
    g.add_argument("--judge", choices=["hf", "openai"], default=None, required=required,
                   help="hf: local transformers chat model; openai: any OpenAI-compatible endpoint")
    g.add_argument("--judge-model", default=None, help="registry name/directory/hub id (hf) or endpoint model name")
    g.add_argument("--judge-url", default=None, help="endpoint base URL, e.g. http://127.0.0.1:8000/v1 (openai)")
    g.add_argument("--judge-key-env", default=None, help="NAME of the environment variable holding the API key")
    g.add_argument("--judge-k", type=int, default=1,
                   help="judgments per item; the median is used (needs temperature > 0)")
    g.add_argument("--judge-temperature", type=float, default=0.0)
    g.add_argument("--judge-max-tokens", type=int, default=2048, help="judge output cap (FastChat: 2048)")


def add_method_config(p: argparse.ArgumentParser) -> None:
    p.add_argument("--method-config", default=None,
                   help="YAML overriding the method's config (strict keys), e.g. methods/radis/recipes/paper.yaml")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="one method config field over --method-config (dotted, value as YAML; repeatable), e.g. "
                        "--set layer=0.5 --set train.lr=1e-4")
    p.add_argument("--budget", choices=["small", "full"], default=None,
                   help="small: methods/<name>/recipes/small.yaml + at most 8 docs per subset and flores "
                        "de-en,en-de (minutes on a CPU); full: the method's defaults")
    p.add_argument("--drop-overlap", action="store_true",
                   help="drop training pairs that also occur in an evaluated task (default: refuse to train)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="harness", description=__doc__, epilog=EPILOG)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="train (or reuse) a method's artifact, then evaluate it on tasks")
    run.add_argument("--method", default="base", help="method name (harness ls methods)")
    run.add_argument("--tasks", required=True,
                     help="comma-separated task names (harness ls tasks); lmeval:<task> runs an "
                          "lm-evaluation-harness task")
    run.add_argument("--langs", default=None,
                     help="comma-separated languages or pairs to keep, e.g. de-en,en-de for flores; "
                          "items that match no selected task are an error")
    run.add_argument("--limit", type=int, default=None, help="first N documents of each language/pair")
    run.add_argument("--output", default=None, help="results folder (default results/runs/<model>__<method>[__limitN])")
    run.add_argument("--backend", choices=["transformers", "vllm"], default="transformers",
                     help="generation backend (vllm: optional extra, CUDA; LoRA artifacts served as LoRA requests)")
    run.add_argument("--chunk-size", type=int, default=64,
                     help="documents generated between two saves of samples.jsonl (a crash loses at most one chunk)")
    run.add_argument("--tensor-parallel-size", type=int, default=1, help="vllm: GPUs per model replica")
    run.add_argument("--data-parallel-size", type=int, default=1, help="vllm: model replicas")
    run.add_argument("--comet-model", default=None, metavar="PATH",
                     help="local COMET checkpoint folder (checkpoints/model.ckpt + hparams.yaml); needs the "
                          "[comet] extra")
    run.add_argument("--lmeval-include", default=None, metavar="DIR",
                     help="folder of extra lm-eval task YAMLs for --tasks lmeval:<task>")
    run.add_argument("--drift-ref", default=None,
                     help="mtbench/alpaca_eval drift: the base model's answers (<base run>/<task>/samples.jsonl or "
                          "the run folder); default: the run's own answers for --method base, else the base model's "
                          "answers generated once and cached under $HARNESS_CACHE/base_answers")
    add_method_config(run)
    add_common(run)
    add_judge(run)

    train = sub.add_parser("train", help="train a method's artifact (or find it in the cache) without evaluating")
    train.add_argument("--method", required=True, help="method name (harness ls methods)")
    train.add_argument("--tasks", default="flores",
                       help="tasks the artifact will be evaluated on: training pairs that overlap them are refused "
                            "(default: flores)")
    train.add_argument("--langs", default=None, help="languages/pairs of those tasks, as for harness run")
    add_method_config(train)
    add_common(train)

    ls = sub.add_parser("ls", help="list tasks, models or methods")
    ls.add_argument("what", choices=["tasks", "models", "methods"])

    val = sub.add_parser("validate",
                         help="render one prompt per task and language; fail if a document field is missing")
    val.add_argument("--tasks", default=None, help="default: all tasks")
    val.add_argument("--data-dir", default=None)

    judge = sub.add_parser("judge", help="judge the saved answers of a finished run (mtbench, safety); no regeneration")
    judge.add_argument("output", help="a results folder written by harness run")
    judge.add_argument("--tasks", default=None, help="default: every judge-using task of the run")
    judge.add_argument("--data-dir", default=None)
    for flag, kw in (("--dtype", {"default": "auto"}), ("--device", {"default": "auto"}),
                     ("--batch-size", {"type": int, "default": 32}), ("--threads", {"type": int, "default": None})):
        judge.add_argument(flag, **kw, help="for a local (hf) judge")
    add_judge(judge, required=True)

    score = sub.add_parser("score", help="recompute metrics of a finished run from its samples (no model calls)")
    score.add_argument("output", help="a results folder written by harness run")
    score.add_argument("--data-dir", default=None)
    score.add_argument("--comet-model", default=None, metavar="PATH", help="local COMET checkpoint folder (see run)")

    lb = sub.add_parser("leaderboard",
                        help="Δ-versus-base leaderboard (md, csv, html, pareto.png) from results.json files")
    lb.add_argument("paths", nargs="*", default=["results"],
                    help="results.json files or folders searched for them (default: results)")
    lb.add_argument("--output", default="results",
                    help="folder for leaderboard.md/.csv/.html and pareto.png (default: results)")
    lb.add_argument("--resamples", type=int, default=1000, help="paired-bootstrap resamples (default 1000)")
    lb.add_argument("--bootstrap-seed", type=int, default=12345, help="seed of the bootstrap resampling")
    lb.add_argument("--versus", default=None, metavar="METHOD",
                    help="also compare every method's composites with this method's, paired (default: sft when "
                         "there is an sft run; none: no such table)")
    st = sub.add_parser("study", help="run or resume a whole study (models x methods x seeds x evaluation blocks)")
    st.add_argument("study", help="study YAML, e.g. studies/science-cpu150.yaml")
    st.add_argument("--executor", choices=["local", "ray"], default="local",
                    help="local: worker processes here; ray: one Ray task per phase (pip install -e '.[ray]')")
    st.add_argument("--workers", type=int, default=None, help="local: phases at once (default: the study's workers)")
    st.add_argument("--threads", type=int, default=None, help="local: torch threads per phase (default: the study's)")
    st.add_argument("--address", default=None, help="ray: cluster address (auto, ray://host:10001); default: local Ray")
    st.add_argument("--output", default=None, help="results folder instead of the study's output")
    st.add_argument("--dry-run", action="store_true", help="print the phases, done or to do, and run nothing")
    st.add_argument("--rerun-stale", action="store_true",
                    help="also re-run the units trained with another config than their recipe gives today (a changed "
                         "method default or recipe); their old folder is kept as <unit>.stale-<artifact>")
    st.add_argument("--only", default=None,
                    help="run only these units' phases (comma-separated unit names, e.g. landermt-s0)")
    cmp = sub.add_parser("compare",
                         help="regression gate: pair two runs, Δ with paired-bootstrap intervals, exit 1 if a "
                         "gated metric regressed (2: not comparable)")
    cmp.add_argument("baseline", help="run folder (packed or not) to compare against")
    cmp.add_argument("candidate", help="run folder (packed or not) under test")
    cmp.add_argument("--gate", default=None, help="metrics that fail the gate when regressed: labels, summary keys, "
                     "metric names or tasks (default: the translation gain and general-ability loss composites)")
    cmp.add_argument("--tolerance", default=None,
                     help="allowed worsening per metric, e.g. chrf=0.5,ifeval=0.01 (default 0)")
    cmp.add_argument("--alpha", type=float, default=0.05, help="intervals are (1 - alpha) intervals (default 0.05)")
    cmp.add_argument("--exact", default=None, help="fail on any difference in: prompts,signatures,outputs")
    cmp.add_argument("--tasks", default=None, help="compare only these tasks (default: all; both runs must have them)")
    cmp.add_argument("--json", nargs="?", const="-", default=None, metavar="FILE",
                     help="write the result as JSON to FILE (no FILE: print JSON instead of the table)")
    cmp.add_argument("--junit", default=None, metavar="FILE", help="write JUnit XML (one test case per gated metric)")
    cmp.add_argument("--worst", type=int, default=3, help="samples shown per worsened metric (default 3; 0: none)")
    cmp.add_argument("--resamples", type=int, default=1000, help="paired-bootstrap resamples (default 1000)")
    cmp.add_argument("--seed", "--bootstrap-seed", dest="seed", type=int, default=12345,
                     help="seed of the bootstrap resampling (default 12345, as the leaderboard)")
    ab = sub.add_parser("ablation", help="the ablation table of a study's arms: scores, Δ vs the reference arm and "
                        "vs each arm's '<arm>-control' unit, with paired-bootstrap intervals (markdown)")
    ab.add_argument("folder", help="the study's output folder, e.g. results/ablation-relay")
    ab.add_argument("--reference", required=True, help="the unit every arm is compared with (today's default)")
    ab.add_argument("--task", default="flores_dev", help="the task of the table (default flores_dev)")
    ab.add_argument("--metrics", default="chrF++,chrF++ x-en,chrF++ en-x",
                    help="metric labels as harness compare names them (the first decides the control check)")
    ab.add_argument("--resamples", type=int, default=1000, help="paired-bootstrap resamples (default 1000)")
    ab.add_argument("--seed", type=int, default=12345, help="seed of the bootstrap resampling")
    rr = sub.add_parser("refresh-report", help="copy the method report (mechanism checks) of the artifact a finished "
                        "run used into its results.json, when the cache holds that artifact (same content hash); "
                        "for runs evaluated before a check existed (no model calls, scores unchanged)")
    rr.add_argument("outputs", nargs="+", metavar="OUT", help="run folders written by harness run")
    for name, what in (("pack", "gzip a finished run's samples.jsonl files (for committing results; read as they are)"),
                       ("unpack", "restore a packed run's plain samples.jsonl files (to resume, score or judge it)")):
        p = sub.add_parser(name, help=what)
        p.add_argument("outputs", nargs="+", metavar="OUT", help="run folders written by harness run")
    return parser


# transformers 5.x deprecates the `past_key_values`/`cache_params` keywords (renamed `cache`) and
# `gradient_checkpointing_enable`; our generation loop keeps the old names because the COMET environment runs on
# transformers 4.57, which lacks the new ones. The warnings say nothing a user can act on: not shown on every run.
_DEPRECATIONS = r"(`past_key_values`|`cache_params`|`gradient_checkpointing_enable`).*deprecated"


def quiet_third_party_deprecations() -> None:
    if getattr(quiet_third_party_deprecations, "done", False):  # main() runs many times inside the tests
        return
    quiet_third_party_deprecations.done = True
    import logging
    import re
    import warnings

    warnings.filterwarnings("ignore", message=_DEPRECATIONS, category=FutureWarning)
    # the same notice through transformers' own logger (`logger.warning_once` in transformers.utils.generic)
    logging.getLogger("transformers.utils.generic").addFilter(
        lambda record: not re.match(_DEPRECATIONS, str(record.msg)))


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HARNESS_QUIET_LOAD_BARS", "1")  # harness.loading: no "Loading weights" bar per model load
    quiet_third_party_deprecations()
    if "harness.loading" in sys.modules:  # imported before the variable was set (a test session, a notebook):
        sys.modules["harness.loading"].quiet_load_bars()  # its import-time call saw nothing; otherwise it will
    from mt_harness import commands

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


if __name__ == "__main__":
    sys.exit(main())
