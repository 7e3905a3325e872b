"""The import graph agrees with README.md's "Architecture" section: one-way data flow, no reaching into private
names. Read from the source with `ast` (function-level imports included), so a lazy import counts too."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PROJECT = ("harness", "tasks", "methods", "leaderboard")


def _imports() -> dict[str, set[tuple[str, str]]]:
    """module -> {(imported module, imported name or "")}, project modules only (`from a import b` also counts as
    importing `a.b`, which may be a submodule)."""
    out: dict[str, set[tuple[str, str]]] = {}
    for top in PROJECT:
        for path in (REPO / top).rglob("*.py"):
            mod = ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
            found: set[tuple[str, str]] = set()
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    found |= {(node.module, a.name) for a in node.names}
                    found |= {(f"{node.module}.{a.name}", "") for a in node.names}  # `from harness import commands`
                elif isinstance(node, ast.Import):
                    found |= {(a.name, "") for a in node.names}
            out[mod] = {(m, n) for m, n in found if m.split(".")[0] in PROJECT}
    return out


IMPORTS = _imports()


def _offenders(importer_prefix: str, forbidden: tuple[str, ...]) -> list[str]:
    return sorted(f"{mod} imports {m}" for mod, deps in IMPORTS.items()
                  if mod == importer_prefix or mod.startswith(importer_prefix + ".")
                  for m, _ in deps if any(m == f or m.startswith(f + ".") for f in forbidden))


def test_graph_was_read():
    assert len(IMPORTS) > 100 and ("harness.rundir.read", "SCHEMA") in IMPORTS["leaderboard.collect"]


def test_tasks_know_nothing_of_models_runs_or_methods():
    assert _offenders("tasks", ("harness.runner", "harness.backends", "harness.loading", "harness.training",
                                "harness.rundir", "harness.api", "harness.commands", "methods", "leaderboard")) == []


def test_methods_do_not_drive_runs():
    assert _offenders("methods", ("harness.runner", "harness.rundir", "harness.api", "harness.commands",
                                  "harness.judges", "tasks", "leaderboard")) == []


def test_leaderboard_reads_results_only():
    # the reader side of the run folder, the task contract (columns), metrics for intervals; never the writer
    assert _offenders("leaderboard", ("harness.rundir.write", "harness.runner", "harness.backends", "harness.loading",
                                      "harness.training", "harness.judges", "harness.api", "harness.commands",
                                      "methods")) == []


def test_metrics_and_backends_stay_below_the_runner():
    assert _offenders("harness.metrics", ("harness.task", "harness.runner", "harness.backends", "harness.rundir",
                                          "tasks", "methods")) == []
    assert _offenders("harness.backends", ("harness.runner", "harness.rundir", "harness.api", "tasks",
                                           "leaderboard")) == []
    assert _offenders("harness.loading", PROJECT[1:] + ("harness.backends", "harness.runner")) == []


def test_only_the_api_and_cli_reach_the_method_registry_and_commands():
    registry = sorted({mod for mod, deps in IMPORTS.items() for m, _ in deps
                      if m == "methods" and not mod.startswith("methods")})
    assert registry == ["harness.api", "harness.commands"]
    commands = sorted({mod for mod, deps in IMPORTS.items() for m, _ in deps if m == "harness.commands" and mod != "harness.commands"})
    assert commands == ["harness.cli"]


def test_no_module_imports_another_modules_private_name():
    private = sorted(f"{mod}: from {m} import {n}" for mod, deps in IMPORTS.items() for m, n in deps
                     if n.startswith("_") and not n.startswith("__"))
    assert private == []
