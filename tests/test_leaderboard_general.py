"""Leaderboard, general-ability side: IFEval and AlpacaEval columns, document-resampled drift intervals, and the
family-weighted general-ability loss composite, on runs made by the real runner with a test-double backend
(fixed outputs per document; nothing here is a real method or model)."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from harness.backends.base import Capabilities, Generation
from harness.data import DataSource
from harness.rundir.context import EvalContext, select_docs
from harness.runner import evaluate
from harness.task import RunContext
from tasks import load_task
from leaderboard import make_leaderboard, stats

MODEL = {"name": "tiny-test", "weights_sha256": "b" * 64}


class FixedBackend:
    """Test double: the output for a request is answer(doc)."""

    capabilities = Capabilities(generate=True, loglik=False, hf_weights=False)

    def __init__(self, docs: dict, answer):
        self.docs, self.answer = docs, answer

    def generate(self, requests, progress=None):
        return [Generation(self.answer(self.docs[r.id.rsplit("#", 1)[0]]), "p", 3, 5, "stop") for r in requests]

    def settings(self):
        return {"backend": "fixed-test-double"}


def _run(data_dir, out, method, task_name, answer, limit, drift=None, model=MODEL):
    task = load_task(task_name, DataSource.resolve(str(data_dir)))
    docs = {d["id"]: d for d in select_docs(task, limit)}
    if drift is not None:  # per-document drift sums as `harness run` writes them (synthetic values)
        task.set_context(RunContext(out_dir=out))
        per = {i: drift(k) for k, i in enumerate(docs)}
        (out / task_name).mkdir(parents=True, exist_ok=True)
        n = sum(v[2] for v in per.values())
        (out / task_name / "drift.json").write_text(json.dumps({
            "drift_nll": sum(v[0] - v[1] for v in per.values()) / n,
            "kl_base_eval": sum(v[3] for v in per.values() if len(v) > 3) / n, "ids": list(docs),
            "per_id": per}))
    ctx = EvalContext(out_dir=out, model=model, limit=limit,
                      method={"name": method, "config": {}, "artifact": {"kind": "none", "config_hash": method[:4]}})
    evaluate(task, FixedBackend(docs, answer), ctx)


def _ifeval_answer(good: bool):
    # a no-comma prompt is passed by a comma-free answer; everything else gets a generic answer
    def answer(doc):
        if good and doc["instruction_id_list"] == ["punctuation:no_comma"]:
            return "A plain answer without any commas at all"
        return "Hello, world." if doc["key"] % 2 else "hello world"
    return answer


@pytest.fixture(scope="module")
def runs(data_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("general")
    _run(data_dir, root / "base", "base", "ifeval", _ifeval_answer(True), 60)
    _run(data_dir, root / "worse", "worse", "ifeval", _ifeval_answer(False), 60)
    _run(data_dir, root / "base", "base", "alpaca_eval", lambda d: "ok", 20, drift=lambda k: [10.0, 10.0, 5])
    _run(data_dir, root / "worse", "worse", "alpaca_eval", lambda d: "ok", 20,
         drift=lambda k: [10.0 + k % 3, 10.0, 4 + k % 2])
    return root


def _samples(path):
    return {json.loads(x)["id"]: json.loads(x) for x in path.read_text().splitlines()}


def test_ifeval_column_drift_column_and_composite(runs, tmp_path):
    tables, _ = make_leaderboard([runs], tmp_path, n_boot=300, seed=3)
    rows = {r.label: r for r in tables[0].rows}
    labels = [c.label for c in tables[0].columns]
    assert "IFEval prompt strict" in labels and "AlpacaEval signed drift" in labels
    assert "HellaSwag acc_norm" not in labels and "AlpacaEval win rate" not in labels  # absent tasks: no column

    # IFEval Δ = difference of per-prompt strict means (independent recomputation from samples.jsonl)
    b = _samples(runs / "base" / "ifeval" / "samples.jsonl")
    w = _samples(runs / "worse" / "ifeval" / "samples.jsonl")
    ids = sorted(b)
    diff = np.array([float(w[i]["ifeval"]["prompt_level_strict"]) - float(b[i]["ifeval"]["prompt_level_strict"])
                     for i in ids])
    cell = rows["worse"].cells["IFEval prompt strict"]
    assert diff.mean() < 0 and cell.delta == pytest.approx(diff.mean())
    assert cell.lo < 0 and cell.hi <= 0  # the worse run never passes a prompt the base fails

    # drift: Σ(eval − base) / Σ tokens, interval from document resamples (brute-force loop here)
    d = json.loads((runs / "worse" / "alpaca_eval" / "drift.json").read_text())["per_id"]
    # document order ("x/2" before "x/10"), the order the leaderboard's resample indices refer to (sacrebleu's)
    aids = sorted(d, key=lambda i: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", i)])
    num, den = [d[i][0] - d[i][1] for i in aids], [d[i][2] for i in aids]
    drift_cell = rows["worse"].cells["AlpacaEval signed drift"]
    assert (drift_cell.value == pytest.approx(sum(num) / sum(den))
            and drift_cell.delta == pytest.approx(drift_cell.value))
    counts = stats.resample_counts(len(aids), 300, 3, "alpaca_eval", "en")
    boot = [sum(c * x for c, x in zip(row, num)) / sum(c * x for c, x in zip(row, den)) for row in counts]
    srt = np.sort(boot)  # sacrebleu's interval convention: the sorted values at k and n - k - 1, k = n // 40
    lo, hi = srt[len(srt) // 40], srt[len(srt) - len(srt) // 40 - 1]
    assert (drift_cell.lo, drift_cell.hi) == (pytest.approx(lo), pytest.approx(hi))
    assert rows["base"].cells["AlpacaEval signed drift"].value == 0.0

    # composite: the only general column with an interval is IFEval (drift is shown, not counted)
    comp = rows["worse"].composites["general-ability loss"]
    assert comp.value == pytest.approx(-100 * cell.delta) and comp.value > 0
    assert (comp.lo, comp.hi) == (pytest.approx(-100 * cell.hi), pytest.approx(-100 * cell.lo))
    assert "instruction following: 1" in comp.note
    md = (tmp_path / "leaderboard.md").read_text()
    assert "IFEval prompt strict" in md and "AlpacaEval signed drift" in md


def test_a_base_scored_on_translation_alone_is_no_general_ability_reference(data_dir, tmp_path):
    """A partner model's base row with FLORES only (the relay's partner) sits in a section with general columns; it is
    the translation reference of its model, but it has no general-ability loss (not "0 (reference)")."""
    root = tmp_path / "runs"
    _run(data_dir, root / "base", "base", "ifeval", _ifeval_answer(True), 10)
    _run(data_dir, root / "base", "base", "flores", lambda d: "Hello world.", 4)
    _run(data_dir, root / "partner", "base", "flores", lambda d: "Hello there.", 4,
         model={"name": "partner", "weights_sha256": "c" * 64})
    tables, _ = make_leaderboard([root], tmp_path / "out", n_boot=50, seed=3)
    rows = {r.model: r for t in tables for r in t.rows}
    assert rows["tiny-test"].composites["general-ability loss"].note == "reference"
    assert rows["partner"].composites["translation gain"].note == "reference"
    assert "general-ability loss" not in rows["partner"].composites


def test_kl_column_resampled_and_signed_drift_without_direction(data_dir, tmp_path):
    """KL to base is resampled from drift.json's 4th per-document element; a run without it shows the summary KL with
    no interval and a note (never an invented interval); the signed drift column has no arrow and a sign note."""
    root = tmp_path / "runs"
    _run(data_dir, root / "base", "base", "alpaca_eval", lambda d: "ok", 20, drift=lambda k: [10.0, 10.0, 5, 0.0])
    _run(data_dir, root / "moved", "moved", "alpaca_eval", lambda d: "ok", 20,
         drift=lambda k: [10.0 - k % 3, 10.0, 4 + k % 2, 0.2 + 0.1 * (k % 4)])
    _run(data_dir, root / "older", "older", "alpaca_eval", lambda d: "ok", 20, drift=lambda k: [10.5, 10.0, 5])
    out = tmp_path / "board"
    tables, _ = make_leaderboard([root], out, n_boot=300, seed=3)
    t = tables[0]
    rows = {r.label: r for r in t.rows}
    labels = [c.label for c in t.columns]
    assert labels.index("AlpacaEval KL to base") + 1 == labels.index("AlpacaEval signed drift")
    d = json.loads((root / "moved" / "alpaca_eval" / "drift.json").read_text())["per_id"]
    kl = rows["moved"].cells["AlpacaEval KL to base"]
    assert kl.value == pytest.approx(sum(v[3] for v in d.values()) / sum(v[2] for v in d.values()))
    assert kl.delta == pytest.approx(kl.value) and 0 < kl.lo <= kl.value <= kl.hi
    signed = rows["moved"].cells["AlpacaEval signed drift"]
    assert signed.value < 0 and signed.hi < 0  # sharper on the base's answers: negative, and it stays a change
    old = rows["older"].cells["AlpacaEval KL to base"]
    assert old.value == 0.0 and old.lo is None and "no per-document KL" in old.note  # summary value, no interval
    assert rows["older"].cells["AlpacaEval signed drift"].lo is not None  # its NLL sums still resample
    md = (out / "leaderboard.md").read_text()
    assert "AlpacaEval KL to base ↓" in md and "AlpacaEval signed drift |" in md
    assert "signed drift ↓" not in md and "signed drift ↑" not in md
    assert "it is not less forgetting" in md and "no interval for older on" in md
    page = (out / "leaderboard.html").read_text()
    assert "AlpacaEval signed drift<span class='sub'>±</span>" in page


def test_family_composite_weighs_families_equally():
    from leaderboard.cells import Cell
    from leaderboard.columns import declared_columns
    from leaderboard.general import family_composite

    cols = [c for c in declared_columns() if c.role == "general"]
    rng = np.random.default_rng(0)

    def c(delta):
        return Cell(0.5, delta, boot=delta + rng.normal(0, 0.01, 200))

    cells = {"IFEval prompt strict": c(-0.10), "HellaSwag acc_norm": c(0.0), "ARC-E acc_norm": c(-0.02),
             "PIQA acc_norm": c(0.0), "MMLU acc": c(0.01)}
    comp = family_composite(cells, cols, -1.0)
    mc = np.mean([0.0, -2.0, 0.0, 1.0])  # pp, the knowledge family's mean Δ
    assert comp.value == pytest.approx(-np.mean([-10.0, mc]))  # two families, equal weight
    expected_boot = -np.mean([100 * cells["IFEval prompt strict"].boot,
                              np.mean([100 * cells[k].boot for k in list(cells)[1:]], axis=0)], axis=0)
    assert np.allclose(comp.boot, expected_boot)
    assert family_composite({}, cols, -1.0).value is None


def test_column_direction_none_is_never_in_a_composite():
    from harness.columns import Column
    from harness.errors import HarnessError

    assert not Column("d", "k", direction="none", kind="summary").has_direction
    with pytest.raises(HarnessError, match="direction 'none' cannot count in a composite"):
        Column("d", "k", "x", direction="none", role="general", family="math")
    with pytest.raises(HarnessError, match="must be 'nll' or 'kl'"):
        Column("d", "k", "bits", kind="drift")
