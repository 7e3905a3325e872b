"""The task registry: one YAML per task in this folder (its `hook:` module beside it), groups in groups.yaml.

    load_task("flores", data)           # a task by name, or a YAML path (its hook still comes from this folder)
    load_tasks(["flores", "general"], data, ["de-en"])   # --tasks/--langs as `harness run` reads them

Hooks are imported only from this folder (a YAML cannot point at code elsewhere).
"""

from __future__ import annotations

import dataclasses
import importlib
from pathlib import Path

from harness.config import from_dict, load_yaml
from harness.data import DataSource
from harness.errors import HarnessError
from harness.task import Task
from harness.task_config import TaskConfig

TASKS_DIR = Path(__file__).resolve().parent


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
            raise HarnessError(f"unknown task {name_or_path!r} "
                               f"(known: {', '.join(task_names())}; see `harness ls tasks`)")
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


def task_class(name_or_path: str) -> type[Task]:
    """The hook class of a task (by name or YAML path), without instantiating it: its declared abilities."""
    cfg, path = load_task_config(name_or_path)
    return _hook(cfg, path)


def _hook(cfg: TaskConfig, path: Path) -> type[Task]:
    if not (TASKS_DIR / f"{cfg.hook}.py").exists():
        raise HarnessError(f"{path}: hook: no module tasks/{cfg.hook}.py")
    module = importlib.import_module(f"tasks.{cfg.hook}")
    cls = getattr(module, "TASK_CLASS", None)
    if cls is None or not issubclass(cls, Task):
        raise HarnessError(f"{path}: hook: tasks/{cfg.hook}.py defines no TASK_CLASS")
    return cls


def _instantiate(cfg: TaskConfig, path: Path, data: DataSource, doc_limit: int | None = None) -> Task:
    task = _hook(cfg, path)(cfg, data, path)
    task.doc_limit = doc_limit
    return task


def load_tasks(names: list[str], data: DataSource, langs: list[str]) -> list[Task]:
    """The harness tasks named (groups expanded; `lmeval:` names are left to harness.lmeval), `langs` selected,
    each checked for missing files and metric dependencies before any model loads."""
    if not names:
        raise HarnessError("--tasks: give at least one task (see `harness ls tasks`)")
    expanded = expand_groups([n for n in names if not n.startswith("lmeval:")])
    names = [n for n, _ in expanded]
    if len(set(names)) != len(names):
        raise HarnessError(f"--tasks: {names} lists a task twice")
    tasks = [load_task(n, data, doc_limit) for n, doc_limit in expanded]  # doc_limit: a group's default size
    if langs:
        used = set()
        for task in tasks:
            mine = [x for x in langs if task.accepts(x)]
            if mine:
                task.select(mine)
                used.update(mine)
        unused = [x for x in langs if x not in used]
        if unused and len(tasks) == 1:
            tasks[0].select(unused)  # raises the task's own explanation
        if unused:
            raise HarnessError(f"--langs: {unused[0]!r} matches none of the tasks {', '.join(names)}")
    for task in tasks:
        task.preflight()  # missing or misaligned files, metric dependencies fail now, not after the model loads
    return tasks


def saved_task(name: str, entry: dict, data: DataSource, where: str) -> Task:
    """The task of a results.json entry as the run evaluated it: by name, or rebuilt from the config saved there
    (a task YAML given by path), built with the saved options (a method may have set extraction options) and the
    group's document limit, and its selected subsets."""
    saved = entry["config"]
    if name in task_names():
        cfg, path = load_task_config(name)
    else:
        cfg = from_dict(TaskConfig, {k: v for k, v in saved.items() if k != "selected"},
                        f"{where}: tasks.{name}.config")
        path = Path(where)
    cfg = dataclasses.replace(cfg, options=dict(saved["options"]))
    task = _instantiate(cfg, path, data, entry.get("doc_limit"))
    task.select(saved["selected"])
    return task


def training_prompts(eval_tasks: list[Task], data: DataSource):
    """The prompt supervised methods train on: that of the first task with the `translation` ability the run
    evaluates (flores, wmt16, a YAML test set), else FLORES's; FLORES is the reference whose prompt stays out of
    artifact keys (harness.training.pipeline)."""
    from harness.method import TrainingPrompts

    flores = next((t for t in eval_tasks if t.name == "flores"), None) or load_task("flores", data)
    task = next((t for t in eval_tasks if getattr(t, "translation", False)), None) or flores
    return TrainingPrompts(task, flores)
