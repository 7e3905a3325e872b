"""The sample-level side of `harness compare` (leaderboard/compare.py): reading the two run folders, refusing runs
that are not comparable, the `--exact` pins, and the "where did it get worse" samples.

Not comparable (one-line HarnessError, exit 2), checked per task in this order:
- tasks: the runs hold other tasks (compare the shared ones with --tasks);
- documents: other subsets, other sample ids per subset (e.g. another --limit), or another document: a
  sample's DOC_FIELDS (reference(s), gold answer, question, instruction ids, choices) differ;
- prompts: the task config's prompt section (template, system prompt, chat mode) differs;
- task config: the rest of the task config (generation, dataset, options; its config_hash) differs;
- metric signatures: a subset's sacrebleu signatures (the version aside), judge identity or the task's
  scoring metadata (language identifier, refusal classifier; COMET's line aside) differ.
Exact pins (`--exact`, for deterministic runs; a difference fails the gate, exit 1):
- prompts: the rendered prompt of every sample (chat template and system prompt included; the first turn: a later
  turn holds the model's own earlier answer; `contexts` for log-likelihood tasks);
- signatures: the full signatures (sacrebleu version included), metric arguments and task metadata;
- outputs: the raw and cleaned outputs, cleaning steps, new-token counts, finish reasons, log-likelihoods and
  per-sample scores of every sample.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field
from pathlib import Path

from harness.config import dict_changes
from harness.errors import HarnessError
from harness.metrics.translation import record_ref_streams
from harness.rundir.layout import results_file
from harness.rundir.read import NOT_RUN_FILE, SCHEMA, read_results
from leaderboard import stats
from leaderboard.cells import Evaluator, column_groups, get_path
from leaderboard.collect import Row, TaskRun

DOC_FIELDS = ("reference", "references", "gold", "question", "question_id", "instruction_id_list", "continuations",
              "answer")
OUTPUT_FIELDS = ("raw", "outputs", "cleaning", "n_new_tokens", "finish", "loglik", "scores")
SHOWN = 3  # differing samples listed per --exact check


def load_row(path: str | Path, who: str) -> Row:
    """A run folder (or its results.json) as a leaderboard Row named `who` ("baseline" / "candidate")."""
    p = Path(path)
    f = p if p.is_file() else results_file(p)
    if not f.is_file():
        why = f"holds {NOT_RUN_FILE} (the method was not run)" if (p / NOT_RUN_FILE).is_file() else "no results.json"
        raise HarnessError(f"{who} {p}: {why}; give a run folder written by `harness run`")
    res = read_results(f)
    if res is None:
        raise HarnessError(f"{f}: not a {SCHEMA} results file; give a run folder written by `harness run`")
    model = res["model"]
    row = Row(method=who, variant="", model=model.get("name", "?"),
              model_sha=model.get("weights_sha256") or model.get("name", "?"), label=who)
    row.tasks = {t: TaskRun(f.parent, res, t, e) for t, e in sorted(res["tasks"].items())}
    return row


def shared_tasks(base: Row, cand: Row, only: list[str], notes: list[str]) -> list[str]:
    """The tasks to compare: `only` (each must be in both runs), else every task, which must be the same in both."""
    for name in only:
        for row in (base, cand):
            if name not in row.tasks:
                raise HarnessError(f"--tasks {name}: not in the {row.label} run (its tasks: {', '.join(row.tasks)})")
    names = list(only) or sorted(set(base.tasks) | set(cand.tasks))
    lm = [t for t in names if t.startswith("lmeval:")]
    if lm:
        notes.append(f"not compared: {', '.join(lm)} (lm-eval tasks declare no metrics here)")
    names = [t for t in names if t not in lm]
    if not only:
        a, b = sorted(set(base.tasks) - set(cand.tasks) - set(lm)), sorted(set(cand.tasks) - set(base.tasks) - set(lm))
        if a or b:
            what = "; ".join(x for x in (f"only the baseline has {', '.join(a)}" if a else "",
                                         f"only the candidate has {', '.join(b)}" if b else "") if x)
            raise HarnessError(f"not comparable (tasks): {what}; compare the shared tasks with --tasks")
    if not names:
        raise HarnessError("nothing to compare: the runs share no harness task")
    return names


def _short(v, n: int = 60) -> str:
    s = v if isinstance(v, str) else json.dumps(v, ensure_ascii=False, sort_keys=True, default=str)
    s = " ⏎ ".join(x.strip() for x in s.splitlines()) if "\n" in s else s
    return s if len(s) <= n else s[: n - 1] + "…"


def _dict_diff(a: dict, b: dict, prefix: str) -> list[str]:
    """Dotted paths where two (nested) config dicts differ, with both values."""
    return [f"{path} {_short(x)} vs {_short(y)}" for path, x, y in sorted(dict_changes(a, b, prefix))]


def _no_version(sig: str) -> str:
    return "|".join(p for p in str(sig).split("|") if not p.startswith("version:"))


def _scoring(tr: TaskRun, full: bool) -> dict:
    """What the metric values depend on besides the samples: per subset signatures and judge (+ metric arguments
    and the sacrebleu version when `full`), and the task's scoring metadata (COMET's skip line aside unless full)."""
    out = {}
    for s, m in sorted(tr.entry.get("metrics", {}).items()):
        if not isinstance(m, dict):
            continue
        sigs = {k: (v if full else _no_version(v)) for k, v in (m.get("signatures") or {}).items()}
        out[s] = {"signatures": sigs, "judge": m.get("judge")} | ({"metric_args": m.get("metric_args")} if full else {})
    meta = dict(tr.entry.get("metadata", {}))
    if not full:
        meta.pop("comet", None)
    return {"subsets": out, "metadata": meta}


def check_comparable(base: Row, cand: Row, ev: Evaluator) -> None:
    """A one-line HarnessError naming the first difference that makes a paired comparison meaningless."""
    for t in base.tasks:
        b, c = base.tasks[t], cand.tasks[t]
        bsel, csel = b.settings["selected"], c.settings["selected"]
        if bsel != csel:
            raise HarnessError(f"not comparable (documents): {t} subsets {','.join(bsel)} in the baseline, "
                               f"{','.join(csel)} in the candidate")
        for s in bsel:
            bids, cids = ev.subset_ids(b, s), ev.subset_ids(c, s)
            if bids != cids:
                only = sorted(set(bids) ^ set(cids))
                raise HarnessError(f"not comparable (documents): {t} {s}: {len(bids)} samples in the baseline, "
                                   f"{len(cids)} in the candidate" + (f" (e.g. {only[0]} in only one)" if only else
                                                                      " (other order)"))
            brec, crec = ev.samples(b), ev.samples(c)
            for i in bids:
                bad = [f for f in DOC_FIELDS if brec[i].get(f) != crec[i].get(f)]
                if bad:
                    raise HarnessError(f"not comparable (documents): {t} {i}: {bad[0]} "
                                       f"{_short(brec[i].get(bad[0]), 40)} in the baseline, "
                                       f"{_short(crec[i].get(bad[0]), 40)} in the candidate")
        bcfg, ccfg = b.entry.get("config", {}), c.entry.get("config", {})
        diff = _dict_diff(bcfg.get("prompt") or {}, ccfg.get("prompt") or {}, "prompt.")
        if diff:
            raise HarnessError(f"not comparable (prompts): {t} {'; '.join(diff)} (baseline vs candidate)")
        if b.entry.get("config_hash") != c.entry.get("config_hash"):
            skip = ("selected", "prompt", "description")
            diff = _dict_diff({k: v for k, v in bcfg.items() if k not in skip},
                              {k: v for k, v in ccfg.items() if k not in skip}, "")
            raise HarnessError(f"not comparable (task config): {t} " + ("; ".join(diff[:3]) or
                               f"config hash {b.entry.get('config_hash')} vs {c.entry.get('config_hash')}")
                               + " (baseline vs candidate)")
        diff = _dict_diff(_scoring(b, False), _scoring(c, False), "")
        if diff:
            raise HarnessError(f"not comparable (metric signatures): {t} {diff[0]} (baseline vs candidate)")


@dataclass
class SampleDiff:
    task: str
    id: str  # sample id, or subset for a signature difference
    field: str
    diff: list[str]  # unified diff lines (baseline -, candidate +)


@dataclass
class ExactCheck:
    what: str  # prompts, signatures, outputs
    total: int  # samples (or task subsets) checked
    differing: int
    examples: list[SampleDiff] = field(default_factory=list)  # the first SHOWN differences

    @property
    def passed(self) -> bool:
        return self.differing == 0


def _text(v) -> str:
    if isinstance(v, list) and all(isinstance(x, str) for x in v):
        return "\n".join(v)
    return v if isinstance(v, str) else json.dumps(v, ensure_ascii=False, sort_keys=True)


def text_diff(a, b, width: int = 300) -> list[str]:
    lines = difflib.unified_diff(_text(a).splitlines(), _text(b).splitlines(), "baseline", "candidate", lineterm="",
                                 n=1)
    return [x if len(x) <= width else x[: width - 1] + "…" for x in lines]


def _first_prompt(rec: dict, name: str):
    """The prompt of the first turn (later turns hold the model's own earlier answers: those are outputs);
    log-likelihood tasks: every context."""
    v = rec.get(name)
    return v[0] if name == "prompts" and isinstance(v, list) and v else v


def exact_check(what: str, base: Row, cand: Row, ev: Evaluator) -> ExactCheck:
    check = ExactCheck(what, 0, 0)

    def record(task: str, ident: str, name: str, a, b) -> None:
        check.differing += 1
        if len(check.examples) < SHOWN:
            check.examples.append(SampleDiff(task, ident, name, text_diff(a, b)))

    for t in base.tasks:
        b, c = base.tasks[t], cand.tasks[t]
        if what == "signatures":
            bs, cs = _scoring(b, True), _scoring(c, True)
            for part in sorted(set(bs["subsets"]) | set(cs["subsets"])):
                check.total += 1
                x, y = bs["subsets"].get(part), cs["subsets"].get(part)
                if x != y:
                    record(t, part, "signatures", json.dumps(x, indent=1, sort_keys=True),
                           json.dumps(y, indent=1, sort_keys=True))
            check.total += 1
            if bs["metadata"] != cs["metadata"]:
                record(t, "(task)", "metadata", json.dumps(bs["metadata"], indent=1, sort_keys=True),
                       json.dumps(cs["metadata"], indent=1, sort_keys=True))
            continue
        brec, crec = ev.samples(b), ev.samples(c)
        for s in b.settings["selected"]:
            for i in ev.subset_ids(b, s):
                check.total += 1
                x, y = brec[i], crec[i]
                if what == "prompts":
                    name = "prompts" if "prompts" in x or "prompts" in y else "contexts"
                    px, py = _first_prompt(x, name), _first_prompt(y, name)
                    if px != py:
                        record(t, i, name, px, py)
                    continue
                bad = next((f for f in OUTPUT_FIELDS if x.get(f) != y.get(f)), None)
                if bad is not None:
                    record(t, i, bad, x.get(bad), y.get(bad))
    return check


@dataclass
class WorstSample:
    id: str
    baseline: float
    candidate: float
    reference: str
    baseline_output: str
    candidate_output: str


@dataclass
class Worst:
    metric: str  # the column label
    task: str
    per_sample: str  # what the per-sample value is
    samples: list[WorstSample]


def _output(rec: dict) -> str:
    if isinstance(rec.get("outputs"), list):
        return " ⏎ ".join(map(str, rec["outputs"]))
    if "pred" in rec:
        return f"choice {rec.get('pred_norm', rec['pred'])} (gold {rec.get('gold')})"
    return ""


def _per_sample(ev: Evaluator, col, tr: TaskRun, subset: str, ids: list[str]) -> list[float | None]:
    recs = ev.samples(tr)
    if col.kind == "corpus":
        metric = ev.metric(tr, subset, col.sample)
        rs = [recs[i] for i in ids]
        st = stats.corpus_stats(metric, [r["outputs"][0] for r in rs],
                                record_ref_streams(rs, f"{tr.run_dir}/{tr.task}"))
        return [stats.corpus_score(metric, st[k:k + 1]) for k in range(len(ids))]
    out = []
    for i in ids:
        v = get_path(recs[i], col.sample)
        out.append(col.none if v is None else float(v))
    return out


def _subsets(col, tr: TaskRun) -> list[str]:
    return list(dict.fromkeys(x for g in column_groups(col, tr) for x in g))


def worst_samples(result, base: Row, cand: Row, ev: Evaluator) -> list[Worst]:
    """For the columns that regressed (and, for a regressed composite, its columns that got worse), the samples with
    the largest per-sample drop, side by side; at most three columns, one per (task, per-sample value)."""
    regressed = [m for m in result.metrics if m.verdict == "regressed"]
    roles = {m.key for m in regressed if m.column is None}
    picked = [m for m in result.metrics if m.column is not None and m.column.kind in ("corpus", "mean")
              and m.delta is not None and (m.verdict == "regressed" or m.column.role in roles)
              and (m.delta if m.higher_is_better else -m.delta) < 0]
    picked.sort(key=lambda m: (m.verdict != "regressed",
                               (m.delta if m.higher_is_better else -m.delta) / m.column.scale))
    widest: dict[tuple[str, str], object] = {}  # per (task, per-sample value): the column over most subsets
    for m in picked:
        k, n = (m.column.task, m.column.sample), len(_subsets(m.column, base.tasks[m.column.task]))
        if k not in widest or n > len(_subsets(widest[k].column, base.tasks[m.column.task])):
            widest[k] = m
    out = []
    for m in list(widest.values())[:3]:
        col = m.column
        b, c = base.tasks[col.task], cand.tasks[col.task]
        rows = []
        for s in _subsets(col, b):
            ids = ev.subset_ids(b, s)
            for i, x, y in zip(ids, _per_sample(ev, col, b, s, ids), _per_sample(ev, col, c, s, ids)):
                if x is not None and y is not None and (y - x if m.higher_is_better else x - y) < 0:
                    rows.append((abs(y - x), i, x, y))
        rows.sort(key=lambda r: (-r[0], r[1]))
        brec, crec = ev.samples(b), ev.samples(c)
        what = f"sentence-level {col.sample}" if col.kind == "corpus" else col.sample
        out.append(Worst(m.name, col.task, what, [
            WorstSample(i, x, y, _short(brec[i].get("reference") or brec[i].get("question") or "", 300),
                        _short(_output(brec[i]), 300), _short(_output(crec[i]), 300))
            for _, i, x, y in rows[: result.config.worst]]))
    return out
