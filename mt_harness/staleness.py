"""The method variant each run's recipe gives today, for the leaderboard's stale-row check (leaderboard/stale.py).

A run's recipe is read from the command results.json records (`harness run --method M --method-config F --budget B
--set K=V`, which `harness study` workers also record): the method's current defaults <- the budget's recipe <- F <-
the --set options, loaded
exactly as `harness run` loads them (methods.load_method_config, passed in by the caller), hashed as
results.json's `method.variant` (harness.method.config_variant) and compared field by field with the recorded config
(results written before `variant` was recorded carry the trainer's reports in their config, so their fallback hash is
not comparable). A run whose recipe cannot be rebuilt here (not a CLI run, a method no longer registered, a config
file that is gone) gets no expectation and is never marked.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import replace
from pathlib import Path

from harness.config import ADDED_OPTION, dict_changes
from harness.errors import HarnessError
from harness.method import config_variant
from leaderboard.collect import find_results
from leaderboard.stale import Expected, run_key

REPO = Path(__file__).resolve().parents[1]


def _flag(argv: list[str], name: str) -> str | None:
    for k, a in enumerate(argv):
        if a == name and k + 1 < len(argv):
            return argv[k + 1]
        if a.startswith(name + "="):
            return a.split("=", 1)[1]
    return None


def _config_file(value: str) -> Path | None:
    for p in (Path(value), REPO / value):
        if p.is_file():
            return p
    return None


def _sets(argv: list[str]) -> tuple[str, ...]:
    """Every `--set KEY=VALUE` of a command line, in order."""
    out = []
    for k, a in enumerate(argv):
        if a == "--set" and k + 1 < len(argv):
            out.append(argv[k + 1])
        elif a.startswith("--set="):
            out.append(a.split("=", 1)[1])
    return tuple(out)


def recipe_of(command: str) -> tuple[str, str | None, str | None, tuple[str, ...]] | None:
    """(method, --method-config, --budget, --set options) of a recorded `harness run` command, or None when it is
    not one."""
    try:
        argv = shlex.split(command)
    except ValueError:
        return None
    if "run" not in argv or _flag(argv, "--method") is None:
        return None
    return _flag(argv, "--method"), _flag(argv, "--method-config"), _flag(argv, "--budget"), _sets(argv)


def _changes(recorded: dict, current: dict, at: str = "") -> list[str]:
    """The fields (dotted) whose recorded value differs from today's, as "field recorded -> now"."""
    return [f"{path} {rec!r} -> {cur!r}" for path, cur, rec in dict_changes(current, recorded, at)]


_PLAIN = object()  # a config field that is not an `added_option` (no legacy value)


def changed_fields(method: dict, current: dict, fields: dict[str, object], variant: str) -> str:
    """What differs between a results.json `method` and today's config dict `current` ("" = current). `fields`: the
    config's field names -> the legacy value of an `added_option` field (what a record without it ran with; absent
    for other fields). Keys of the recorded config that are not config fields (the trainer's reports: training_data,
    analysis, ...) are ignored."""
    recorded = {k: v for k, v in (method.get("config") or {}).items() if k in fields}
    current = dict(current)
    for k, legacy in fields.items():
        if legacy is not _PLAIN:  # left out of a config dict = at its legacy value
            recorded.setdefault(k, legacy)
            current.setdefault(k, legacy)
    diff = _changes(recorded, current)
    if not diff and method.get("variant") not in (None, variant):
        diff = [f"variant {method['variant']} -> {variant}"]
    return "; ".join(diff[:4]) + (f"; {len(diff) - 4} more" if len(diff) > 4 else "")


def expected_variant(method_name: str, config_file: str | None, budget: str | None, sets: tuple[str, ...],
                     load_config) -> tuple | None:
    """(today's config, its fields (changed_fields), Expected without `changed`) that `harness run --method method_name
    [--method-config config_file] [--budget budget] [--set k=v ...]` gives today; None when it cannot be rebuilt."""
    import dataclasses

    from harness.config import parse_sets, to_dict
    from methods import get_method

    try:
        method = get_method(method_name)
    except HarnessError:
        return None
    path = None
    if config_file:
        path = _config_file(config_file)
        if path is None:
            return None
    try:
        cfg = load_config(method, path, budget, parse_sets(list(sets)))
    except HarnessError:
        return None
    recipe = config_file or (f"--budget {budget}" if budget else f"{method_name}'s defaults")
    recipe += "".join(f" --set {s}" for s in sets)
    fields = {f.name: f.metadata.get(ADDED_OPTION, _PLAIN) for f in dataclasses.fields(cfg)}
    return to_dict(cfg), fields, Expected(config_variant(cfg), recipe)


def expected_variants(paths: list[Path], load_config) -> dict[str, Expected]:
    """Run folder (leaderboard.stale.run_key) -> the variant its recipe gives today, for every trained run under
    `paths` (those whose recipe cannot be rebuilt: `Expected.unknown` says why). `load_config(method, file, budget,
    options)`: how `harness run` loads a method config (methods.load_method_config)."""
    out: dict[str, Expected] = {}
    cache: dict[tuple, tuple | None] = {}
    for f in find_results(paths):
        try:
            res = json.loads(f.read_text())
        except (OSError, json.JSONDecodeError):
            continue  # the leaderboard reports unreadable results itself
        method = res.get("method") or {}
        if (method.get("artifact") or {}).get("kind", "none") == "none":
            continue  # the untouched base model has no method config
        recipe = recipe_of(str(res.get("command", "")))
        if recipe is None or recipe[0] != method.get("name"):
            out[run_key(f.parent)] = Expected("", "", unknown="results.json does not record the `harness run` "
                                              "command that trained it (so not its recipe)")
            continue
        if recipe not in cache:
            cache[recipe] = expected_variant(*recipe, load_config)
        if cache[recipe] is None:
            out[run_key(f.parent)] = Expected("", "", unknown=f"its recipe ({recipe[1] or recipe[2] or 'defaults'}) "
                                              f"cannot be rebuilt here")
        else:
            current, fields, exp = cache[recipe]
            out[run_key(f.parent)] = replace(exp, changed=changed_fields(method, current, fields, exp.variant))
    return out
