"""Find `results.json` files, read their per-sample records, and group runs whose scores are comparable.

A *row* of the leaderboard is one method variant (method name + a hash of the method config's own fields) trained
with one seed (one artifact) on one base model (weights sha256). Task entries of the same row found in several
results folders are merged (the newest `updated` wins when a task appears twice). Two task entries are
*comparable* when their settings key matches: task config hash (prompt, generation, options, selected subsets),
`limit`, selected subsets, metric signatures and judge identity per subset, and the task metadata. Runs are put
into *sections*: a run joins the first section that agrees with it on every task both have, otherwise it opens a
new one; the leaderboard renders each section separately and says what differs. A `not_run.json` (a method
deliberately not run on a model, and why) is found under the same paths and becomes a "not run" row
(leaderboard/notrun.py). A folder below a searched one that holds its own leaderboard.md is not searched
(`nested_boards`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import HarnessError
from harness.io import stable_hash
from harness.rundir.layout import NOT_RUN_FILE, RESULTS_FILE
from harness.rundir.phases import STALE_TAG  # folders a study moved aside: kept on disk, skipped here
from harness.rundir.read import (
    SCHEMA,
    method_variant,
    read_drift,
    read_not_run,
    read_results,
    read_samples,
    samples_path,
    samples_sha256,
)


@dataclass
class TaskRun:
    """One task entry of one results.json."""

    run_dir: Path
    results: dict
    task: str
    entry: dict

    @property
    def settings(self) -> dict:
        """What must be equal for two runs' scores on this task to be compared."""
        metrics = self.entry.get("metrics", {})
        per_subset = {s: {k: m[k] for k in ("signatures", "judge") if k in m}
                      for s, m in sorted(metrics.items()) if isinstance(m, dict)}
        limit = self.entry["limit"] if "limit" in self.entry else self.results.get("limit")  # per task since 2026-12
        return {"config_hash": self.entry.get("config_hash"), "limit": limit,
                "selected": list(self.entry.get("config", {}).get("selected", sorted(metrics))),
                "per_subset": per_subset, "metadata": self.entry.get("metadata", {})}

    @property
    def key(self) -> str:
        return stable_hash(self.settings)

    @property
    def updated(self) -> str:
        return str(self.results.get("updated") or self.results.get("created") or "")

    def samples(self) -> dict[str, dict]:
        """Per-sample records by id (read only; a torn last line is ignored as `harness run` would cut it)."""
        path = samples_path(self.run_dir, self.task, self.entry)
        if not path.exists():
            raise HarnessError(f"{path}: samples file missing; the leaderboard needs it for confidence intervals "
                               f"(rerun `harness run` into {self.run_dir})")
        return read_samples(path)

    def drift(self) -> dict | None:
        """The task's drift.json (harness.rundir.read.read_drift), or None when the run has none."""
        return read_drift(self.run_dir, self.task)

    def samples_changed(self) -> bool:
        want = self.entry.get("samples_sha256")
        path = samples_path(self.run_dir, self.task, self.entry)
        return bool(want) and path.exists() and samples_sha256(path) != want


def method_record(tasks: dict) -> dict:
    """The results.json `method` record of a row's runs (its first task's; a row's runs share one method)."""
    tr = next(iter(tasks.values()), None)
    return (tr.results.get("method") or {}) if tr is not None else {}


def control_of(tasks: dict) -> str:
    """The control a row's runs were decoded as (`control` in the recorded method config, e.g. the relay's
    `shuffled_source`: the method's mechanism check, leaderboard/control.py); "" for an ordinary method run."""
    return str((method_record(tasks).get("config") or {}).get("control", "") or "")


@dataclass
class Row:
    method: str
    variant: str  # method config hash ('' for base)
    model: str  # model display name
    model_sha: str
    tasks: dict[str, TaskRun] = field(default_factory=dict)
    label: str = ""
    seed: int | None = None  # the training seed of a trained artifact (None for the untouched base model)
    artifact: str = ""  # the artifact's config hash (seed and training data included); "" for the base model

    @property
    def ident(self) -> tuple[str, str, str, int | None, str]:
        return (self.method, self.variant, self.model_sha, self.seed, self.artifact)


@dataclass
class Section:
    keys: dict[str, str] = field(default_factory=dict)  # task -> settings key
    settings: dict[str, dict] = field(default_factory=dict)  # task -> readable settings
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def agrees(self, runs: dict[str, TaskRun]) -> bool:
        shared = set(self.keys) & set(runs)
        return bool(shared) and all(self.keys[t] == runs[t].key for t in shared)

    def row(self, ident: tuple[str, str, str, int | None]) -> Row | None:
        return next((r for r in self.rows if r.ident == ident), None)

    def base_for(self, row: Row) -> Row | None:
        return next((r for r in self.rows if r.method == "base" and r.model_sha == row.model_sha), None)


BOARD_FILE = "leaderboard.md"  # a folder below a searched one that holds its own board is a separate study


def nested_boards(paths: list[Path]) -> list[Path]:
    """Folders strictly below a searched folder that hold their own leaderboard (e.g. results/science/ under
    results/): not searched, so that `harness leaderboard` with its default `results` keeps rebuilding the board
    it rebuilt before such a study landed. Named explicitly, such a folder is searched as usual."""
    return sorted({b.parent for p in paths if p.is_dir() for b in p.rglob(BOARD_FILE) if b.parent != p})


def _search(root: Path, name: str) -> list[Path]:
    skip = nested_boards([root])
    return [f for f in sorted(root.rglob(name)) if not any(s in f.parents for s in skip)
            and not any(STALE_TAG in part for part in f.relative_to(root).parts[:-1])]


def find_results(paths: list[Path]) -> list[Path]:
    found: list[Path] = []
    for p in paths:
        if p.is_file() and p.name == RESULTS_FILE:
            found.append(p)
        elif p.is_file() and p.name == NOT_RUN_FILE:
            continue  # find_not_run's
        elif p.is_dir():
            found.extend(_search(p, RESULTS_FILE))
        else:
            raise HarnessError(f"{p}: no such results.json or folder")
    return [f for f in dict.fromkeys(f.resolve() for f in found)]


@dataclass
class NotRun:
    """One not_run.json: `method` deliberately not run on the model named `model`, for `reason`."""

    path: Path
    method: str
    model: str
    reason: str


def find_not_run(paths: list[Path]) -> list[NotRun]:
    """Every not_run.json under the paths (or given as a path), read and checked: a malformed one, or one beside a
    results.json, is a one-line HarnessError naming the file."""
    found: list[Path] = []
    for p in paths:
        if p.is_file() and p.name == NOT_RUN_FILE:
            found.append(p)
        elif p.is_dir():
            found.extend(_search(p, NOT_RUN_FILE))
    out, seen = [], set()
    for f in found:  # shown as given (relative paths stay relative in committed boards), deduplicated by identity
        if f.resolve() in seen:
            continue
        seen.add(f.resolve())
        d = read_not_run(f)
        out.append(NotRun(f, d["method"], d["model"], d["reason"]))
    return out


def load_runs(files: list[Path], notes: list[str]) -> list[list[TaskRun]]:
    runs = []
    for f in files:
        res = read_results(f)
        if res is None:
            notes.append(f"skipped {f}: not a {SCHEMA} results file")
            continue
        runs.append([TaskRun(f.parent, res, t, e) for t, e in sorted(res["tasks"].items())])
    return runs


def _ident(tr: TaskRun) -> tuple[str, str, str, int | None, str]:
    """(method, config variant, model, training seed, artifact): runs of one method trained with other seeds are
    other rows of one variant."""
    m = tr.results["method"]
    art = m.get("artifact") or {}
    trained = art.get("kind", "none") != "none"
    seed = tr.results.get("seed") if trained else None
    return (m.get("name", "?"), method_variant(m), tr.results["model"].get("weights_sha256") or
            tr.results["model"].get("name", "?"), seed, art.get("config_hash", "") if trained else "")


def group(runs: list[list[TaskRun]]) -> list[Section]:
    """Put runs into sections of mutually comparable task settings; merge task entries per row."""
    sections: list[Section] = []
    for trs in runs:
        if not trs:
            continue
        by_task = {tr.task: tr for tr in trs}
        sec = next((s for s in sections if s.agrees(by_task)), None)
        if sec is None:
            sec = Section()
            sections.append(sec)
        ident = _ident(trs[0])
        row = sec.row(ident)
        if row is None:
            row = Row(method=ident[0], variant=ident[1], model=trs[0].results["model"].get("name", "?"),
                      model_sha=ident[2], seed=ident[3], artifact=ident[4])
            sec.rows.append(row)
        for t, tr in by_task.items():
            sec.keys.setdefault(t, tr.key)
            sec.settings.setdefault(t, tr.settings)
            old = row.tasks.get(t)
            if old is not None:
                keep, drop = (tr, old) if tr.updated >= old.updated else (old, tr)
                sec.notes.append(f"{row.method} on {row.model}, task {t}: found in {old.run_dir} and {tr.run_dir}; "
                                 f"using the newer {keep.run_dir}")
                row.tasks[t] = keep
            else:
                row.tasks[t] = tr
    for sec in sections:
        _label(sec)
        sec.rows.sort(key=lambda r: (r.model, r.method != "base", r.label))
    return sections


def _label(sec: Section) -> None:
    """method (+ ` <control> control` for a control run), + @variant when one method has several configs among
    its method rows (or among its control rows), + `seed N` when one config has several seeds, + @artifact when
    one config and seed has several artifacts (e.g. trained on other data)."""
    for row in sec.rows:
        control = control_of(row.tasks)
        same = [r for r in sec.rows if r.method == row.method and r.model_sha == row.model_sha
                and control_of(r.tasks) == control]
        variants = {r.variant for r in same}
        seeds = {r.seed for r in same if r.variant == row.variant}
        artifacts = {r.artifact for r in same if r.variant == row.variant and r.seed == row.seed}
        row.label = (row.method + (f" {control} control" if control else "")
                     + (f"@{row.variant[:6]}" if len(variants) > 1 and row.variant else "")
                     + (f" seed {row.seed}" if len(seeds) > 1 else "")
                     + (f" @{row.artifact[:6]}" if len(artifacts) > 1 else ""))


def describe_difference(a: Section, b: Section) -> str:
    """One line saying how section b's settings differ from section a's."""
    parts = []
    for t in sorted(set(a.settings) | set(b.settings)):
        sa, sb = a.settings.get(t), b.settings.get(t)
        if sa is None or sb is None:
            continue
        diff = [k for k in ("limit", "selected", "config_hash", "per_subset", "metadata") if sa.get(k) != sb.get(k)]
        nice = {"per_subset": "metric signatures/judge", "config_hash": "task config"}
        if diff:
            detail = ", ".join(f"{nice.get(k, k)} {_short(sb.get(k))} vs {_short(sa.get(k))}"
                               if k in ("limit", "selected") else nice.get(k, k) for k in diff)
            parts.append(f"{t}: {detail}")
    return "; ".join(parts) or "no shared task"


def _short(v) -> str:
    if isinstance(v, list):
        return ",".join(map(str, v)) if len(v) <= 6 else f"{len(v)} subsets"
    return str(v)
