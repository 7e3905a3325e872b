"""The base class task hooks implement (one YAML per task under tasks/, its hook module beside it).

Data flow: Task.docs() → Task.messages() → backend requests → Task.score() per sample →
samples.jsonl → Task.aggregate() per subset → Task.summarize() → results.json.

A task declares what it can do (`uses_judge`, `drift_capable`, `uses_comet`, `kind`) and the leaderboard
columns it reports (`leaderboard`: one harness.columns.Column per metric). What a run tells its tasks (run
folder, COMET settings) arrives once, as a `RunContext`, through `Task.set_context` (harness run / score / judge).
Its configuration is harness.task_config; the registry that finds and loads tasks by name is tasks/__init__.py.
"""

from __future__ import annotations

import dataclasses
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Literal

from harness.columns import Column
from harness.config import from_dict, to_dict
from harness.data import DataSource
from harness.errors import HarnessError
from harness.metrics.comet import Comet
from harness.task_config import GenerationConfig, NoOptions, TaskConfig


@dataclass
class RunContext:
    """What a run tells its tasks, once, before any work (`Task.set_context`)."""

    out_dir: Path | None = None  # the run folder (judge-using tasks read <out>/<task>/drift.json from it)
    comet: Comet = field(default_factory=lambda: Comet(skipped="no --comet-model given"))  # for uses_comet tasks


class Task:
    """Base class for task hooks. Subclasses set `Options` and implement docs/score/aggregate, and declare their
    abilities and leaderboard columns as class attributes."""

    Options: ClassVar[type] = NoOptions
    content_fields: ClassVar[tuple[str, ...]] = ()  # doc fields that must appear in the rendered prompt
    n_rounds: ClassVar[int] = 1  # >1 for multi-turn tasks: messages() is called once per round
    # options that only say how a method's outputs are read (e.g. which part of an answer is the
    # translation); a method may override them, and they do not make runs incomparable
    extraction_options: ClassVar[tuple[str, ...]] = ()
    # -- abilities ------------------------------------------------------------------------------
    kind: ClassVar[Literal["generate", "loglik"]] = "generate"  # loglik: scored by the backend's loglikelihood
    uses_judge: ClassVar[bool] = False  # implements judge_records(); judged by --judge / `harness judge`
    drift_capable: ClassVar[bool] = False  # judge-free drift against the base model's answers (with uses_judge)
    uses_comet: ClassVar[bool] = False  # reports COMET when the run gives --comet-model (RunContext.comet)
    leaderboard: ClassVar[tuple[Column, ...]] = ()  # the columns it reports; see leaderboard_columns()
    translation: ClassVar[bool] = False  # documents are translations (typed view: harness.abilities.TranslationDoc)
    answer_rounds: ClassVar[bool] = False  # implements add_answer_round(): a method adds rounds scored like round 0

    def __init__(self, cfg: TaskConfig, data: DataSource, path: Path | None = None):
        self.cfg = cfg
        self.name = cfg.task
        self.data = data
        where = f"{path or cfg.task}: options"
        self.options = from_dict(self.Options, cfg.options, where)
        self.selected: list[str] = self.all_subsets()
        self.doc_limit: int | None = None  # a task group's default subset size (used when --limit is not given)
        self.context = RunContext()  # replaced once per run by set_context()
        self.judge_settings: dict | None = None  # the judge that judged this task's records in this process

    def set_context(self, ctx: RunContext) -> None:
        """Called once by `harness run` / `score` / `judge` before any work."""
        self.context = ctx

    def leaderboard_columns(self) -> list[Column]:
        """The declared columns with this task's name; override when they depend on the config."""
        return [dataclasses.replace(c, task=self.name) for c in self.leaderboard]

    def check_summary(self, summary: dict) -> None:
        """A declared column whose key the summary lacks (a renamed metric) is an error, not a silent gap."""
        pivot = str(dataclasses.asdict(self.options).get("pivot", "en"))
        for c in self.leaderboard_columns():
            if not c.when and c.key not in summary and c.groups(self.selected, pivot):
                raise HarnessError(f"task {self.name}: declares leaderboard column {c.label!r} with summary key "
                                   f"{c.key!r}, but summarize() reported no such key (it has: "
                                   f"{', '.join(sorted(summary)) or 'nothing'}); fix {type(self).__name__}"
                                   f".leaderboard or summarize()")

    def judge(self, records: list[dict], judge, spec, cache) -> None:
        """Judge records in place (uses_judge tasks implement judge_records) and remember the judge's settings for
        metadata(); called by harness.judges.phase."""
        self.judge_records(records, judge, spec, cache)
        self.judge_settings = {**spec.describe(), "identity": judge.identity()}

    def judge_records(self, records: list[dict], judge, spec, cache) -> None:
        raise NotImplementedError(f"task {self.name} does not use a judge")

    def add_answer_round(self, label: str) -> None:
        """Ask one more round per document, scored like round 0 under `label` (per sample `label`, metrics
        `label_*`); tasks with `answer_rounds` implement it (a method calls it from `prepare_task`)."""
        raise HarnessError(f"task {self.name}: declares no answer_rounds, so no extra answer round can be added")

    # -- subsets ------------------------------------------------------------------------------
    def all_subsets(self) -> list[str]:
        """Evaluation subsets (languages, or pairs like 'de-en'); default: the languages list."""
        return list(self.cfg.languages)

    def check_subsets(self, wanted: list[str]) -> None:
        """Raise a one-line HarnessError for a language/pair this task cannot evaluate; override to accept more
        than `all_subsets()` (e.g. any FLORES pair of known codes)."""
        known = self.all_subsets()
        bad = [w for w in wanted if w not in known]
        if bad:
            raise HarnessError(f"task {self.name}: unknown language/pair {bad[0]!r} (known: {', '.join(known)})")

    def accepts(self, item: str) -> bool:
        """Whether `--langs item` names a subset of this task (checked, not selected)."""
        try:
            self.check_subsets([item])
            return True
        except HarnessError:
            return False

    def select(self, wanted: list[str]) -> None:
        self.check_subsets(wanted)
        self.selected = list(wanted)

    def preflight(self) -> None:
        """Cheap checks run before any model is loaded or trained: the selected subsets' data, and that their
        metrics can be computed here (e.g. a BLEU tokenizer's extra dependency). Default: none."""

    # -- per-document hooks -------------------------------------------------------------------
    def docs(self, subset: str) -> list[dict]:
        """Documents of one subset, loaded once per task instance (`load_docs`) and shared by every caller."""
        return self.memo(("docs", subset), lambda: self.load_docs(subset))

    def load_docs(self, subset: str) -> list[dict]:
        """Read one subset's documents; each a dict with a unique 'id' and the template's fields."""
        raise NotImplementedError

    def memo(self, key, compute):
        """`compute()` once per task instance and `key` (a file's lines, a parsed CSV, few-shot exemplars): the one
        cache hooks use, dropped with the task (no lru_cache on methods, which would keep every instance alive)."""
        cache = self.__dict__.setdefault("_memo", {})
        if key not in cache:
            cache[key] = compute()
        return cache[key]

    def messages(self, doc: dict, history: list[str]) -> list[dict]:
        """Chat messages for the next round; `history` holds the cleaned outputs of earlier rounds."""
        msgs = [{"role": "system", "content": self.cfg.prompt.system}] if self.cfg.prompt.system else []
        return msgs + [{"role": "user", "content": render_template(self.cfg.prompt.template, doc, self.name)}]

    def generation(self, doc: dict, round_idx: int) -> GenerationConfig:
        return self.cfg.generation

    def clean(self, doc: dict, text: str) -> tuple[str, list[str]]:
        """Post-process one raw output; returns (cleaned, names of the cleaning steps applied)."""
        return text.strip(), []

    def score(self, doc: dict, outputs: list[str]) -> dict:
        """Per-sample fields for samples.jsonl (reference, per-sample scores, ...)."""
        raise NotImplementedError

    def aggregate(self, subset: str, records: list[dict]) -> dict:
        """Metrics of one subset from its sample records (the keys end up in results.json)."""
        raise NotImplementedError

    def summarize(self, per_subset: dict[str, dict], records: dict[str, list[dict]]) -> dict:
        """Cross-subset summary from the per-subset metrics and the sample records of each subset; default: the
        mean of every numeric metric present in all subsets."""
        return mean_metrics(per_subset)

    def metadata(self) -> dict:
        """Extra settings for results.json (metric signatures, judge ids, ...)."""
        return {}


def render_template(template: str, doc: dict, task: str) -> str:
    try:
        return template.format(**doc)
    except KeyError as e:
        raise HarnessError(f"task {task}: prompt template uses {{{e.args[0]}}} but documents have no such field "
                           f"(fields: {', '.join(sorted(doc))})") from None


def template_fields(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def mean_metrics(per_subset: dict[str, dict]) -> dict:
    if not per_subset:
        return {}
    keys = set.intersection(*(set(m) for m in per_subset.values()))
    out = {}
    for k in sorted(keys):
        vals = [m[k] for m in per_subset.values()]
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vals):
            out[k] = sum(vals) / len(vals)
    return out


def config_dict(task: Task) -> dict:
    return {**to_dict(task.cfg), "selected": task.selected, "options": dataclasses.asdict(task.options)}


def comparable_config(task: Task) -> dict:
    """The task config minus its extraction options: what must be equal for scores to be comparable."""
    cfg = config_dict(task)
    cfg["options"] = {k: v for k, v in cfg["options"].items() if k not in task.extraction_options}
    cfg.pop("selected")  # recorded separately; the leaderboard compares it on its own
    return cfg
