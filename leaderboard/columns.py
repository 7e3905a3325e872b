"""The leaderboard's columns: what each task declares (`Task.leaderboard` / `leaderboard_columns()`, harness/task.py),
read through the task registry from the config saved in results.json, and put in display order.

Order: the columns of translation tasks (those with a `translation` column) by task name, then the general-ability
columns by family (FAMILIES order, then any other family) and task name, then the rest (drift); within a task, its
declaration order. Labels must be unique in a table: a clash is resolved by prefixing the task name.
"""

from __future__ import annotations

import dataclasses
import json

from harness.columns import Column
from harness.data import DataSource
from harness.errors import HarnessError
from harness.task import Task
from leaderboard.collect import Section, TaskRun
from tasks import load_task, task_from_saved_config, task_names

__all__ = ["COMPOSITES", "FAMILIES", "Column", "declared_columns", "missing_keys", "ordered", "section_columns",
           "task_columns"]

COMPOSITES = {"translation gain": "translation", "general-ability loss": "general"}
# the general-ability families in the order their columns are shown (the loss composite weighs them equally)
FAMILIES = ("instruction following", "knowledge & commonsense", "math", "summarization", "safety")

_CACHE: dict[str, tuple[list[Column], str]] = {}


def _task_of(tr: TaskRun) -> Task:
    """The task of a results.json entry, from the config saved there (the hook comes from tasks/); an entry without
    a saved config falls back to the task YAML of that name. No data is read."""
    data = DataSource(None, allow_hub=False)
    config = tr.entry.get("config")
    if isinstance(config, dict) and "hook" in config:
        return task_from_saved_config(config, data, f"{tr.run_dir}/results.json: tasks.{tr.task}.config")
    if tr.task in task_names():
        return load_task(tr.task, data)
    raise HarnessError(f"{tr.run_dir}/results.json: task {tr.task} has no saved config and no tasks/{tr.task}.yaml")


def task_columns(tr: TaskRun) -> tuple[list[Column], str]:
    """(declared columns, note): no columns and a note saying why when the task cannot be rebuilt here."""
    if tr.task.startswith("lmeval:"):  # scored by lm-eval; its metrics have no leaderboard columns
        return [], ""
    k = json.dumps([tr.task, tr.entry.get("config")], sort_keys=True, default=str)
    if k not in _CACHE:
        try:
            _CACHE[k] = (_task_of(tr).leaderboard_columns(), "")
        except (HarnessError, ImportError) as e:
            _CACHE[k] = ([], f"task {tr.task}: no leaderboard columns ({e})")
    return _CACHE[k]


def _pivot(tr: TaskRun) -> str:
    return str(tr.entry.get("config", {}).get("options", {}).get("pivot", "en"))


def missing_keys(tr: TaskRun) -> list[Column]:
    """Declared columns that every run of the task should report (no `when`, subsets selected) but whose key this
    run's summary lacks: a metric renamed since, or results written by older code."""
    summary = tr.entry.get("summary", {})
    return [c for c in task_columns(tr)[0]
            if not c.when and c.key not in summary and c.groups(tr.settings["selected"], _pivot(tr))]


def outdated_notes(tr: TaskRun, who: str) -> list[str]:
    """Notes for a run whose results.json is behind its code or its samples (a declared column's key missing, samples
    changed since): `harness score` rewrites it. Used by the leaderboard and by `harness compare`."""
    fix = f"run `harness score {tr.run_dir}`"
    notes = [f"{who}, task {tr.task}: results.json has no summary key {c.key!r} for column {c.label!r}; {fix}"
             for c in missing_keys(tr)]
    if tr.samples_changed():
        notes.append(f"{who}, task {tr.task}: {tr.run_dir}/{tr.entry.get('samples_file')} changed since results.json "
                     f"was written; {fix}")
    return notes


def section_columns(sec: Section) -> tuple[list[Column], list[str]]:
    """Every column declared by the section's tasks, in display order, and notes on tasks without declarations."""
    declared: dict[str, list[Column]] = {}
    notes: list[str] = []
    for row in sec.rows:
        for name, tr in row.tasks.items():
            if name not in declared:
                declared[name], note = task_columns(tr)
                notes += [note] if note else []
    return ordered(declared), notes


def declared_columns() -> list[Column]:
    """The columns of every task in tasks/, in display order (for `harness`'s own checks and the tests)."""
    data = DataSource(None, allow_hub=False)
    return ordered({name: load_task(name, data).leaderboard_columns() for name in task_names()})


def ordered(declared: dict[str, list[Column]]) -> list[Column]:
    """The columns of several tasks (task -> its columns) in display order (module docstring), labels made unique."""
    translation = {c.task for cols in declared.values() for c in cols if c.role == "translation"}

    def order(item: tuple[int, Column]) -> tuple:
        i, c = item
        if c.task in translation:
            return 0, 0, "", c.task, i
        if c.role == "general":
            fam = FAMILIES.index(c.family) if c.family in FAMILIES else len(FAMILIES)
            return 1, fam, c.family, c.task, i
        return 2, 0, "", c.task, i

    out: list[Column] = []
    for _, c in sorted(((i, c) for cols in declared.values() for i, c in enumerate(cols)), key=order):
        clash = any(o.label == c.label for o in out)
        out.append(dataclasses.replace(c, label=f"{c.task} {c.label}") if clash else c)
    return out
