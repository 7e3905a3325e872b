"""The Python API under the CLI: `run(spec)`, `train(spec)`, `score(folder)`, `judge(folder, spec)`,
`leaderboard(paths)`, `study(path)`, `compare(baseline, candidate)`.

    from mt_harness.api import RunSpec, leaderboard, run
    spec = RunSpec(method="lora", tasks=["flores"], langs=["de-en"], limit=32, budget="small")
    out = run(spec)                      # trains (or reuses) the artifact, evaluates, writes results
    print(out.results["tasks"]["flores"]["summary"])
    leaderboard(["results"])             # results/leaderboard.{md,csv,html} + pareto.png

`harness run/train/score/leaderboard` only translate their arguments into these calls. Everything a run needs is in
one `RunSpec`; budgets, method-config merging and output naming live here, not in the CLI.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from harness.data import DataSource
from harness.errors import HarnessError
from methods import load_method_config  # noqa: F401 - part of this API (defaults <- recipe <- file <- --set)
from harness.io import writable_dir
from harness.loading import BackendConfig
from harness.method import config_variant


@dataclass
class RunSpec:
    """One `harness run` (or `harness train`: the evaluation fields are then unused)."""

    tasks: list[str]  # task or group names (`harness ls tasks`); `lmeval:<task>` runs an lm-eval task
    method: str = "base"
    model: str | None = None  # registry name, local HF folder or hub id (default: the embedded SmolLM2)
    langs: list[str] = field(default_factory=list)  # languages/pairs to keep, e.g. ["de-en", "en-de"]
    limit: int | None = None  # first N documents of each subset
    output: str | Path | None = None  # results folder (default results/runs/<model>__<method>[__limitN])
    method_config: str | Path | None = None  # YAML merged over the method's defaults (strict keys)
    # over method_config: {"layer": 0.5, "train.lr": 1e-4} (dotted keys; `harness run --set layer=0.5`)
    method_options: dict = field(default_factory=dict)
    budget: str | None = None  # "small": capped run + methods/<m>/recipes/small.yaml
    seed: int = 0
    data_dir: str | Path | None = None  # default: $HARNESS_DATA_DIR or ../shared/data
    drop_overlap: bool = False  # drop training pairs that overlap the evaluation instead of refusing
    settings: BackendConfig = field(default_factory=BackendConfig)  # dtype, device, batch size, threads, ...
    backend: str = "transformers"  # or "vllm"
    tensor_parallel_size: int = 1  # vllm
    data_parallel_size: int = 1  # vllm
    chunk_size: int = 64  # documents generated between two saves of samples.jsonl
    comet_model: str | None = None  # local COMET checkpoint folder
    lmeval_include: str | None = None  # folder of extra lm-eval task YAMLs
    drift_ref: str | None = None  # base answers for mtbench/alpaca_eval drift (default: cached base run)
    judge: object = None  # harness.judges.JudgeSpec, or None

    def __post_init__(self):
        for name in ("tasks", "langs"):  # "a,b" is accepted where a list is expected
            value = getattr(self, name)
            if isinstance(value, str):
                setattr(self, name, [v.strip() for v in value.split(",") if v.strip()])


@dataclass
class RunOutput:
    out: Path  # the results folder
    results: dict  # its results.json
    harness_tasks: list[str]  # names of the harness tasks evaluated (the rest are lmeval: tasks)
    lmeval_tasks: list[str]


# Budget profiles: run caps here, method settings in methods/<name>/recipes/<budget>.yaml.
BUDGETS = {"small": {"limit": 8, "langs": ["de-en", "en-de"]}, "full": {}}


def apply_budget(spec: RunSpec) -> None:
    """`small`: at most 8 documents per subset, flores de-en,en-de unless the spec says otherwise."""
    if spec.budget not in (None, *BUDGETS):
        raise HarnessError(f"--budget {spec.budget}: use one of {', '.join(BUDGETS)}")
    caps = BUDGETS.get(spec.budget or "full", {})
    if "limit" in caps:
        spec.limit = min(spec.limit, caps["limit"]) if spec.limit else caps["limit"]
    if "langs" in caps and not spec.langs:
        spec.langs = list(caps["langs"])


def default_output(model: str, method: str, limit: int | None) -> Path:
    safe = Path(model).name if Path(model).exists() else model.replace("/", "_")
    return Path("results") / "runs" / (f"{safe}__{method}" + (f"__limit{limit}" if limit else ""))


@dataclass
class Setup:
    """What `run` and `train` resolve before any work (cheap checks first)."""

    method: object  # harness.method.Method
    cfg: object  # the method's config dataclass
    tasks: list
    model_name: str
    model: object  # harness.models.ResolvedModel
    ctx: object  # harness.method.TrainContext


def prepare(spec: RunSpec) -> Setup:
    from harness.loading import set_threads
    from harness.method import TrainContext
    from harness.models import DEFAULT_MODEL, resolve_model
    from harness.training.artifacts import artifacts_root
    from methods import get_method
    from tasks import load_tasks, training_prompts

    writable_dir(artifacts_root(), "artifact folder ($HARNESS_CACHE/artifacts)")
    data = DataSource.resolve(str(spec.data_dir) if spec.data_dir else None)
    method = get_method(spec.method)
    tasks = load_tasks(spec.tasks, data, spec.langs)
    cfg = load_method_config(method, spec.method_config, spec.budget, spec.method_options)
    set_threads(spec.settings.threads)
    model_name = spec.model or DEFAULT_MODEL
    model = resolve_model(model_name)
    ctx = TrainContext(model=model, data=data, out_dir=artifacts_root(), eval_tasks=tasks, seed=spec.seed,
                       backend=spec.settings, allow_overlap=spec.drop_overlap, prompts=training_prompts(tasks, data))
    return Setup(method, cfg, tasks, model_name, model, ctx)


def train(spec: RunSpec):
    """Train (or find in the cache) the method's artifact; training pairs overlapping `spec.tasks` are refused.
    (`budget` picks the method's recipe; the run caps of `apply_budget` concern evaluation only.)"""
    setup = prepare(spec)
    return setup.method.train(setup.cfg, setup.ctx)


def run(spec: RunSpec) -> RunOutput | None:
    """Train (or reuse) the artifact, evaluate every task, write `<output>/results.json` and per-sample JSONL.
    Returns None on a non-main process of a distributed training (rank 0 alone evaluates)."""
    from harness import lmeval
    from harness.backends.factory import build_backend
    from harness.judges.phase import PostPhase
    from harness.rundir.context import EvalContext
    from harness.rundir.pack import refuse_packed
    from harness.runner import evaluate
    from harness.task import RunContext

    if spec.limit is not None and spec.limit < 1:
        raise HarnessError("--limit: must be >= 1")
    if spec.output:
        writable_dir(spec.output, "--output")  # before any training or generation
    if spec.chunk_size < 1:
        raise HarnessError("--chunk-size: must be >= 1")
    if spec.backend == "vllm":
        from harness.backends.vllm import require_vllm

        require_vllm()  # fail before any training
    if spec.judge is not None:
        spec.judge.validate()
    apply_budget(spec)
    lm_tasks = lmeval.load([n for n in spec.tasks if lmeval.is_lmeval(n)], spec.lmeval_include)
    setup = prepare(spec)
    method, tasks, model = setup.method, setup.tasks, setup.model
    # before any work: the method refuses tasks/phases/backends it cannot serve (what the backend that
    # build_backend will return can do: log-likelihoods, transformers weights for drift and lm-eval)
    method.check_run(setup.cfg, tasks, lm_tasks, spec.backend, model)
    comet = configure_comet(tasks, spec.comet_model)
    out = writable_dir(spec.output or default_output(setup.model_name, method.name, spec.limit), "--output")
    for task in tasks:
        task.set_context(RunContext(out_dir=out, comet=comet))  # once, before any work
        refuse_packed(out / task.name, "running into it again")
    for lt in lm_tasks:
        refuse_packed(out / lt.folder, "running into it again")
    artifact = method.train(setup.cfg, setup.ctx)
    if int(os.environ.get("RANK", "0")) != 0:  # under `accelerate launch`: rank 0 alone evaluates
        print(f"[rank {os.environ['RANK']}] training done; evaluation runs on rank 0 only")
        return None
    for task in tasks:
        method.prepare_task(task, artifact)
    backend = build_backend(spec.backend, method, artifact, model, spec.settings, _vllm_config(spec))
    ectx = EvalContext(out_dir=out, seed=spec.seed, limit=spec.limit, chunk_size=spec.chunk_size,
                       method={"name": method.name, "config": artifact.config, "variant": config_variant(setup.cfg),
                               "artifact": artifact.describe()},
                       model=model.identity())
    post = PostPhase(spec.judge, spec.settings, drift_ref=spec.drift_ref)
    results = {}
    for task in tasks:
        results = evaluate(task, backend, ectx)
        results = post.after_generation(task, backend, ectx) or results
    for lt in lm_tasks:
        results = lmeval.evaluate(lt, backend, ectx)
    return RunOutput(out, results, [t.name for t in tasks], [lt.name for lt in lm_tasks])


def _vllm_config(spec: RunSpec):
    if spec.backend != "vllm":
        return None
    from harness.backends.vllm import VLLMConfig

    return VLLMConfig(dtype=spec.settings.dtype, tensor_parallel_size=spec.tensor_parallel_size,
                      data_parallel_size=spec.data_parallel_size, trust_remote_code=spec.settings.trust_remote_code,
                      seed=spec.seed)


def configure_comet(tasks: list, model: str | None):
    """The COMET settings for tasks that report COMET (skipped, with the reason, when unusable); a bad path is an
    error now, before any work."""
    import sys

    from harness.metrics.comet import Comet

    if model and not any(t.uses_comet for t in tasks):
        print(f"warning: --comet-model ignored: none of the tasks ({', '.join(t.name for t in tasks)}) reports COMET",
              file=sys.stderr)
    return Comet.configure(model)


def score(output: str | Path, data_dir: str | Path | None = None, comet_model: str | None = None) -> dict:
    """Recompute every metric of a finished run from its samples.jsonl (no model calls); returns its results.json."""
    import time

    from harness.metrics.comet import Comet
    from harness.rundir.write import reopen
    from harness.runner import aggregate, rescore

    run = reopen(output, "harness score:")
    data = DataSource.resolve(str(data_dir) if data_dir else None)
    comet = Comet.configure(comet_model)
    for name in run.task_names():  # lmeval: entries were scored by lm-eval itself; nothing to recompute here
        task = _saved_task(run, name, data, comet)
        store = run.store(task)
        t0 = time.time()
        rescore(task, store)
        run.save(task, aggregate(task, store, run.limit(name)), time.time() - t0)
    return run.results


def refresh_report(output: str | Path) -> str:
    """Copy the method report (mechanism checks) of the artifact a finished run used into its results.json, when
    that artifact (same content hash) is in the cache and reports more or other than the run recorded: for runs
    evaluated before a check existed. No model calls, no score changes. Returns what happened, in words."""
    from harness.io import existing_dir
    from harness.rundir.layout import results_file
    from harness.rundir.read import read_results
    from harness.rundir.write import refresh_report as write_report
    from harness.training.artifacts import recorded_artifact

    path = results_file(existing_dir(output, "harness refresh-report:"))
    results = read_results(path) if path.is_file() else None
    if results is None:
        raise HarnessError(f"{path}: not a results.json written by `harness run`; give run folders")
    art = results["method"].get("artifact") or {}
    if art.get("kind", "none") == "none":
        return "untrained (no artifact): nothing to refresh"
    found = recorded_artifact(results["method"])
    if found is None:
        return (f"artifact {art.get('hash')} not found in this cache (recorded at {art.get('path')}); "
                f"train it again (same config, data and seed) to refresh its report")
    if not write_report(path.parent, found.report, str(found.path)):
        return f"report already that of {found.path}"
    return f"report refreshed from {found.path} ({', '.join(sorted(found.report)) or 'empty'})"


def judge(output: str | Path, spec, data_dir: str | Path | None = None, settings: BackendConfig | None = None,
          tasks: list[str] | None = None) -> dict:
    """Judge the saved answers of a finished run with `spec` (a harness.judges.JudgeSpec; no regeneration, no
    evaluated model), only its `tasks` when given, and rewrite its results.json; returns it."""
    import time

    from harness.judges.phase import PostPhase
    from harness.rundir.context import select_docs
    from harness.rundir.write import reopen
    from harness.runner import aggregate

    run = reopen(output, "harness judge:")
    data = DataSource.resolve(str(data_dir) if data_dir else None)
    phase = PostPhase(spec, settings)
    judged = []
    for name in run.task_names(tasks):
        task = _saved_task(run, name, data)
        if not task.uses_judge:
            continue
        store = run.store(task)
        t0 = time.time()
        phase.judge_task(task, store, [d["id"] for d in select_docs(task, run.limit(name))])
        run.save(task, aggregate(task, store, run.limit(name)), time.time() - t0)
        judged.append(name)
    if not judged:
        raise HarnessError(f"{run.out}: none of its tasks ({', '.join(run.results['tasks'])}) uses a judge")
    return run.results


def _saved_task(run, name: str, data: DataSource, comet=None):
    """A finished run's task as the run evaluated it (options, the group's document limit), with its context."""
    from tasks import saved_task

    entry, where = run.entry(name)
    task = saved_task(name, entry, data, where)
    task.set_context(run.context(comet))
    return task


def leaderboard(paths: list[str | Path], output: str | Path = "results", resamples: int = 1000,
                bootstrap_seed: int = 12345, versus: str | None = None):
    """Regenerate leaderboard.{md,csv,html} and pareto.png in `output` from results.json files or folders.
    `versus`: reference method of the composite-difference table (None: sft when present; "none": no table).
    Rows whose recorded method variant differs from what their recipe gives with today's defaults are marked stale
    (mt_harness/staleness.py); each row carries its method's mechanism check (mt_harness/mechanism.py). Returns
    (tables, written paths)."""
    from leaderboard import make_leaderboard
    from mt_harness.mechanism import mechanisms
    from mt_harness.staleness import expected_variants

    found = [Path(p) for p in paths]
    present = [p for p in found if p.exists()]  # a missing path is make_leaderboard's one-line error
    expected = expected_variants(present, load_method_config)  # rows trained with an older default: stale
    return make_leaderboard(found, Path(output), resamples, bootstrap_seed, versus, expected, mechanisms(present))


def study(path: str | Path, executor: str = "local", workers: int | None = None, threads: int | None = None,
          address: str | None = None, output: str | Path | None = None, dry_run: bool = False,
          rerun_stale: bool = False, only: list[str] | None = None):
    """Run (or resume) the study in `path` (mt_harness.study.spec): every pending phase through `train`/`run` in worker
    processes (`executor` local or ray), COST.md and the leaderboard in its output folder (`output` replaces it).
    `rerun_stale`: also re-run the units trained with another config than their recipe gives today (their old
    folder is renamed `<unit>.stale-<artifact>`, which the leaderboard skips); `only`: run these units' phases only
    (names, e.g. ["landermt-s0"]). Returns mt_harness.study.run.StudyResult."""
    from mt_harness.study.run import StudyOptions, run_study
    from mt_harness.study.spec import load_study
    from methods import get_method

    spec = load_study(path, None if output is None else str(output))
    for entry in spec.methods:
        get_method(entry.method)  # an unknown method is an error before any work
    return run_study(spec, StudyOptions(executor=executor, workers=workers, threads=threads, address=address,
                                        dry_run=dry_run, rerun_stale=rerun_stale, only=only,
                                        api=__name__))


def compare(baseline: str | Path, candidate: str | Path, config=None):
    """Pair two run folders (packed or not) sample by sample and decide per metric (leaderboard/compare.py);
    `config`: a leaderboard.compare.CompareConfig (gate, tolerance, alpha, exact, resamples, seed, tasks).
    Returns the Comparison (`.exit_code`: 0 ok, 1 regressed); not comparable: a one-line HarnessError."""
    from leaderboard.compare import CompareConfig, run_compare

    return run_compare(Path(baseline), Path(candidate), config or CompareConfig())
