"""Task configuration (one YAML per task under tasks/) and the base class task hooks implement.

Data flow: Task.docs() → Task.messages() → backend requests → Task.score() per sample →
samples.jsonl → Task.aggregate() per subset → Task.summarize() → results.json.

A task declares what it can do (`uses_judge`, `drift_capable`, `uses_comet`, `kind`) and the leaderboard
columns it reports (`leaderboard`: one `Column` per metric). What a run tells its tasks (run folder, COMET
settings) arrives once, as a `RunContext`, through `Task.set_context` (harness run / score / judge).
"""

from __future__ import annotations

import dataclasses
import fnmatch
import importlib
import re
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from harness.config import from_dict, load_yaml, to_dict
from harness.data import DataSource
from harness.errors import HarnessError
from harness.metrics.comet import Comet

TASKS_DIR = Path(__file__).resolve().parent.parent / "tasks"


@dataclass
class GenerationConfig:
    """Decoding settings. Greedy when temperature == 0."""

    max_new_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    stop: list[str] = field(default_factory=list)  # cut the output at the first of these strings
    stop_plain: list[str] = field(default_factory=list)  # extra stops used only without a chat template

    def validate(self, where: str) -> None:
        if self.max_new_tokens < 1:
            raise HarnessError(f"{where}.max_new_tokens: must be >= 1")
        if self.temperature < 0:
            raise HarnessError(f"{where}.temperature: must be >= 0")


@dataclass
class PromptConfig:
    """How a document becomes a prompt. `template` uses {field} names of the document."""

    template: str
    system: str | None = None
    chat: Literal["auto", "on", "off"] = "auto"  # auto = use the model's chat template when it has one


@dataclass
class DatasetConfig:
    hub: str | None = None  # hub dataset id, used when the data directory has no local copy
    local: str | None = None  # path under the data directory
    split: str = "test"


@dataclass
class TaskConfig:
    task: str  # task name, equals the YAML file stem
    hook: str  # python module under tasks/ that implements the Task class
    description: str
    languages: list[str]
    prompt: PromptConfig
    generation: GenerationConfig
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    options: dict[str, Any] = field(default_factory=dict)  # checked against the hook's Options dataclass

    def validate(self, where: str) -> None:
        if not re.fullmatch(r"[a-z][a-z0-9_]*", self.hook):
            raise HarnessError(f"{where}.hook: {self.hook!r} must be a module name under tasks/")
        if not self.languages:
            raise HarnessError(f"{where}.languages: must list at least one language")
        dupes = {x for x in self.languages if self.languages.count(x) > 1}
        if dupes:
            raise HarnessError(f"{where}.languages: {sorted(dupes)[0]!r} is listed twice")


@dataclass
class NoOptions:
    pass


@dataclass(frozen=True)
class Column:
    """One leaderboard column a task declares (`Task.leaderboard`): the summary key it shows and how the leaderboard
    recomputes it from samples.jsonl for a paired bootstrap interval (leaderboard/build.py).

    kind: `corpus` = sacrebleu metric `sample` rebuilt from metrics[subset].signatures, resampled from sufficient
    statistics; `mean` = mean of the per-sample value at the dotted path `sample` (`[*]` averages a list);
    `summary` = the results.json value as is (no interval); `drift` = per-document sums of <run>/<task>/drift.json.
    """

    label: str  # column title; unique over all tasks shown together
    key: str  # key in results.json tasks[task].summary; the column is shown when a run has it
    sample: str = ""  # corpus: metric name; mean: dotted path in a sample record
    direction: Literal["higher", "lower"] = "higher"  # which way is better
    kind: Literal["corpus", "mean", "summary", "drift"] = "mean"
    subsets: str = "*"  # fnmatch patterns over subsets, "|"-separated groups (mean of group means); {pivot}
    role: Literal["translation", "general", ""] = ""  # composite it counts in: translation gain, general loss, none
    scale: float = 1.0  # full range of the metric (composites are in percent of it): 100 for percent, 1 for rates
    family: str = ""  # general columns: the ability family (the loss composite weighs families equally)
    none: float | None = None  # value for a per-sample None; None = drop that pair
    # when the summary may lack `key` ("judged", "--comet-model given"); "" = every run whose selected subsets
    # match `subsets` reports it, checked when results are aggregated (a renamed metric fails loudly)
    when: str = ""
    # judge alternative: used instead of (key, sample) when the row and its base both have this summary key
    judge_key: str = ""
    judge_sample: str = ""
    task: str = ""  # filled in by Task.leaderboard_columns()

    def __post_init__(self):
        where = f"leaderboard column {self.label!r}"
        if self.direction not in ("higher", "lower"):
            raise HarnessError(f"{where}: direction {self.direction!r} must be 'higher' or 'lower'")
        if self.kind not in ("corpus", "mean", "summary", "drift"):
            raise HarnessError(f"{where}: kind {self.kind!r} must be corpus, mean, summary or drift")
        if self.role not in ("translation", "general", ""):
            raise HarnessError(f"{where}: role {self.role!r} must be 'translation', 'general' or ''")
        if not self.scale > 0:
            raise HarnessError(f"{where}: scale must be > 0 (the metric's full range)")
        if self.kind in ("corpus", "mean") and not self.sample:
            raise HarnessError(f"{where}: kind {self.kind} needs `sample` (metric name or per-sample path)")

    @property
    def higher_is_better(self) -> bool:
        return self.direction == "higher"

    def groups(self, selected: list[str], pivot: str) -> list[list[str]]:
        """Groups of selected subsets: one per "|"-separated pattern that matches any (empty groups dropped)."""
        pats = [p.replace("{pivot}", pivot) for p in self.subsets.split("|")]
        return [g for g in ([s for s in selected if fnmatch.fnmatchcase(s, p)] for p in pats) if g]


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

    def select(self, wanted: list[str]) -> None:
        known = self.all_subsets()
        bad = [w for w in wanted if w not in known]
        if bad:
            raise HarnessError(f"task {self.name}: unknown language/pair {bad[0]!r} (known: {', '.join(known)})")
        self.selected = wanted

    def preflight(self) -> None:
        """Cheap checks run before any model is loaded or trained: the selected subsets' data, and that their
        metrics can be computed here (e.g. a BLEU tokenizer's extra dependency). Default: none."""

    # -- per-document hooks -------------------------------------------------------------------
    def docs(self, subset: str) -> list[dict]:
        """Documents of one subset; each a dict with a unique 'id' and the template's fields."""
        raise NotImplementedError

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


def task_names() -> list[str]:
    return sorted(p.stem for p in TASKS_DIR.glob("*.yaml") if p.stem != "groups")  # groups.yaml: task groups


def task_groups() -> dict[str, dict]:
    """Groups from tasks/groups.yaml: name -> {"description": str, "members": {task: default doc limit}}."""
    path = TASKS_DIR / "groups.yaml"
    return load_yaml(path) if path.exists() else {}


def expand_groups(names: list[str]) -> list[tuple[str, int | None]]:
    """--tasks names with group names replaced by their members: (task, default doc limit or None)."""
    groups = task_groups()
    out: list[tuple[str, int | None]] = []
    for name in names:
        if name in groups:
            out += [(member, limit) for member, limit in groups[name]["members"].items()]
        else:
            out.append((name, None))
    return out


def load_task_config(name_or_path: str) -> tuple[TaskConfig, Path]:
    p = Path(name_or_path)
    if p.suffix not in (".yaml", ".yml"):
        p = TASKS_DIR / f"{name_or_path}.yaml"
        if not p.exists():
            raise HarnessError(f"unknown task {name_or_path!r} (known: {', '.join(task_names())}; see `harness ls tasks`)")
    cfg = from_dict(TaskConfig, load_yaml(p), str(p))
    if p.parent.resolve() == TASKS_DIR and cfg.task != p.stem:
        raise HarnessError(f"{p}: task: {cfg.task!r} must equal the file name {p.stem!r}")
    return cfg, p


def load_task(name_or_path: str, data: DataSource, doc_limit: int | None = None) -> Task:
    """Load a task YAML and instantiate its hook. Hooks are only imported from the project's tasks/.
    `doc_limit`: a task group's default subset size."""
    cfg, path = load_task_config(name_or_path)
    return _instantiate(cfg, path, data, doc_limit)


def task_from_saved_config(saved: dict, data: DataSource, where: str, doc_limit: int | None = None) -> Task:
    """The task of a results.json entry rebuilt from the config saved there (for a task YAML given by path,
    which `harness score` cannot find by name); the hook still comes from tasks/."""
    cfg = from_dict(TaskConfig, {k: v for k, v in saved.items() if k != "selected"}, where)
    return _instantiate(cfg, Path(where), data, doc_limit)


def _instantiate(cfg: TaskConfig, path: Path, data: DataSource, doc_limit: int | None = None) -> Task:
    if not (TASKS_DIR / f"{cfg.hook}.py").exists():
        raise HarnessError(f"{path}: hook: no module tasks/{cfg.hook}.py")
    module = importlib.import_module(f"tasks.{cfg.hook}")
    cls = getattr(module, "TASK_CLASS", None)
    if cls is None or not issubclass(cls, Task):
        raise HarnessError(f"{path}: hook: tasks/{cfg.hook}.py defines no TASK_CLASS")
    task = cls(cfg, data, path)
    task.doc_limit = doc_limit
    return task


def config_dict(task: Task) -> dict:
    return {**to_dict(task.cfg), "selected": task.selected, "options": dataclasses.asdict(task.options)}


def comparable_config(task: Task) -> dict:
    """The task config minus its extraction options: what must be equal for scores to be comparable."""
    cfg = config_dict(task)
    cfg["options"] = {k: v for k, v in cfg["options"].items() if k not in task.extraction_options}
    cfg.pop("selected")  # recorded separately; the leaderboard compares it on its own
    return cfg
