"""The Task contract: declared abilities, declared leaderboard columns (a missing key is loud, at run time and in the
leaderboard), the run context, and COMET computed from the records in summarize()."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
from echo_backend import EchoBackend

from harness.data import DataSource
from harness.errors import HarnessError
from harness.metrics.comet import Comet
from harness.rundir.context import EvalContext
from harness.runner import evaluate
from harness.columns import Column
from harness.task import RunContext, Task
from tasks import load_task
from leaderboard import collect
from leaderboard.build import build
from tasks.flores import FloresTask

MODEL = {"name": "tiny-test", "weights_sha256": "a" * 64}


def _ctx(out: Path, method: str = "base") -> EvalContext:
    return EvalContext(out_dir=out, model=MODEL, limit=3,
                       method={"name": method, "config": {}, "artifact": {"kind": "none", "config_hash": ""}})


def _flores(data_dir, cls=None) -> Task:
    task = load_task("flores", DataSource(data_dir))
    if cls is not None:
        task = cls(task.cfg, task.data)
    task.select(["de-en", "en-de"])
    return task


def _echo(task: Task) -> EchoBackend:
    docs = {d["id"]: d for s in task.selected for d in task.docs(s)[:3]}
    return EchoBackend(docs, lambda doc, i: doc["reference"] if i % 2 else doc["source"])


def test_abilities_are_declared_on_the_class(data_dir):
    assert (Task.uses_judge, Task.drift_capable, Task.uses_comet, Task.kind) == (False, False, False, "generate")
    ds = DataSource(data_dir)
    mtb, alp, saf, flo, arc = (load_task(n, ds) for n in ("mtbench", "alpaca_eval", "safety", "flores", "arc_easy"))
    assert mtb.uses_judge and mtb.drift_capable and alp.uses_judge and alp.drift_capable
    assert saf.uses_judge and not saf.drift_capable and flo.uses_comet and not flo.uses_judge
    assert arc.kind == "loglik" and flo.kind == "generate"
    assert flo.context.out_dir is None and flo.context.comet.skipped == "no --comet-model given"
    assert load_task("mgsm", ds, doc_limit=5).doc_limit == 5  # a task group's default subset size


def test_a_declared_key_missing_from_the_summary_fails_the_run(data_dir, tmp_path):
    class Renamed(FloresTask):  # declares a key that summarize() does not report (a renamed metric)
        leaderboard = FloresTask.leaderboard + (Column("chrF++ new", "chrf_new", "chrf", kind="corpus"),)

    task = _flores(data_dir, Renamed)
    with pytest.raises(HarnessError, match=r"column 'chrF\+\+ new' with summary key 'chrf_new'.*Renamed.leaderboard"):
        evaluate(task, _echo(task), _ctx(tmp_path / "a"))

    class Optional(FloresTask):  # keys reported only sometimes (`when`) or for unselected subsets are not required
        leaderboard = FloresTask.leaderboard + (Column("maybe", "maybe", kind="summary", when="sometimes"),
                                                Column("fr only", "fr_only", "chrf", kind="corpus", subsets="fr-*"))

    task = _flores(data_dir, Optional)
    res = evaluate(task, _echo(task), _ctx(tmp_path / "b"))
    assert "maybe" not in res["tasks"]["flores"]["summary"] and "chrf" in res["tasks"]["flores"]["summary"]


def test_leaderboard_notes_a_run_without_a_declared_key(data_dir, tmp_path):
    task = _flores(data_dir)
    for method in ("base", "other"):
        evaluate(task, _echo(task), _ctx(tmp_path / method, method))
    path = tmp_path / "other" / "results.json"
    res = json.loads(path.read_text())
    del res["tasks"]["flores"]["summary"]["off_target"]  # as written by code that named the metric differently
    path.write_text(json.dumps(res))
    (table,) = build(collect.group(collect.load_runs(collect.find_results([tmp_path]), [])), n_boot=20)
    assert "off-target" in [c.label for c in table.columns]  # the base run still has it
    assert any("no summary key 'off_target' for column 'off-target'" in n and "harness score" in n
               for n in table.notes)
    other = next(r for r in table.rows if r.method == "other")
    assert "off-target" not in other.cells and "chrF++" in other.cells


def test_leaderboard_notes_a_task_whose_hook_is_gone(data_dir, tmp_path):
    task = _flores(data_dir)
    evaluate(task, _echo(task), _ctx(tmp_path / "base"))
    path = tmp_path / "base" / "results.json"
    res = json.loads(path.read_text())
    res["tasks"]["flores"]["config"]["hook"] = "no_such_hook"
    path.write_text(json.dumps(res))
    (table,) = build(collect.group(collect.load_runs(collect.find_results([tmp_path]), [])), n_boot=20)
    assert table.columns == [] and any("task flores: no leaderboard columns" in n and "no_such_hook" in n
                                       for n in table.notes)


@dataclass
class FakeComet(Comet):
    """Scores a segment by its hypothesis length; counts predict calls."""

    calls: int = 0

    def predict(self, sources, hyps, refs):
        assert len(sources) == len(hyps) == len(refs)
        self.calls += 1
        return [float(len(h)) for h in hyps]


def test_comet_is_computed_from_the_records_in_summarize(data_dir, tmp_path):
    task = _flores(data_dir)
    evaluate(task, _echo(task), _ctx(tmp_path))
    records: dict[str, list[dict]] = {}
    for line in (tmp_path / "flores" / "samples.jsonl").read_text().splitlines():
        rec = json.loads(line)
        records.setdefault(rec["subset"], []).append(rec)
    fresh = _flores(data_dir)  # aggregate() never ran on this instance: nothing can have been stashed
    comet = FakeComet(checkpoint=Path("unused.ckpt"))
    fresh.set_context(RunContext(out_dir=tmp_path, comet=comet))
    per_subset = {s: fresh.aggregate(s, recs) for s, recs in records.items()}
    summary = fresh.summarize(per_subset, records)
    assert comet.calls == 1  # one batched predict over every subset
    for s, recs in records.items():
        assert per_subset[s]["comet"] == pytest.approx(sum(len(r["outputs"][0]) for r in recs) / len(recs))
    assert summary["comet"] == pytest.approx(sum(per_subset[s]["comet"] for s in records) / len(records))
    assert "comet" not in task.summarize({s: task.aggregate(s, r) for s, r in records.items()}, records)  # no model
