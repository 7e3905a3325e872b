"""Stale rows (issue #27): a row trained with a method config other than what its recipe gives today is marked on
the leaderboard (md note, csv field, page flag); a current one is not. Runs are made by the real runner with a
test-double backend, then given the `method` record and command a `harness run --method sft` would write."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from harness.backends.base import Capabilities, Generation
from harness.config import to_dict
from harness.data import DataSource
from harness.method import config_variant
from harness.rundir.context import EvalContext, select_docs
from harness.runner import evaluate
from harness.training.trainer import TrainConfig
from methods import get_method
from mt_harness import api
from mt_harness.staleness import expected_variants, recipe_of
from tasks import load_task

MODEL = {"name": "tiny-test", "weights_sha256": "c" * 64}
RECIPE = "data:\n  pairs: [de-en]\n  max_per_pair: 4\ntrain:\n  lr: 5.0e-5\n  max_steps: 2\n"


class FixedBackend:
    capabilities = Capabilities(generate=True, loglik=False, hf_weights=False)

    def generate(self, requests, progress=None):
        return [Generation("Hello world.", "p", 3, 5, "stop") for _ in requests]

    def settings(self):
        return {"backend": "fixed-test-double"}


def _run(data_dir, out: Path, method: dict) -> None:
    task = load_task("ifeval", DataSource.resolve(str(data_dir)))
    select_docs(task, 8)
    evaluate(task, FixedBackend(), EvalContext(out_dir=out, model=MODEL, limit=8, method=method))


def _trained(data_dir, root: Path, recipe: Path) -> Path:
    """An sft run recorded as `harness run --method sft --method-config recipe` records it, trained with the recipe as
    it reads now."""
    sft = get_method("sft")
    cfg = api.load_method_config(sft, recipe, None)
    out = root / "sft"
    _run(data_dir, out, {"name": "sft", "config": {**to_dict(cfg), "training_data": {"n": 4}},
                         "variant": config_variant(cfg), "artifact": {"kind": "full", "config_hash": "a1"}})
    res = json.loads((out / "results.json").read_text())
    res["command"] = f"cli.py run --method sft --seed 0 --method-config {recipe} --tasks ifeval --output {out}"
    (out / "results.json").write_text(json.dumps(res))
    return out


def test_recipe_of_reads_the_recorded_command():
    assert recipe_of("cli.py run --method relay --method-config m/r.yaml --budget small") == ("relay", "m/r.yaml",
                                                                                             "small", ())
    assert recipe_of("harness run --method relay --set layer=0.5 --set=train.lr=0.0001") == (
        "relay", None, None, ("layer=0.5", "train.lr=0.0001"))
    assert recipe_of("cli.py score results/x") is None


def test_stale_rows_marked_only_when_the_recipe_now_gives_another_config(data_dir, tmp_path):
    root = tmp_path / "runs"
    _run(data_dir, root / "base", {"name": "base", "config": {}, "artifact": {"kind": "none", "config_hash": ""}})
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(RECIPE)
    out = _trained(data_dir, root, recipe)

    # same variant: no mark, no note
    tables, _ = api.leaderboard([root], tmp_path / "b1", resamples=50)
    rows = {r.label: r for r in tables[0].rows}
    assert rows["sft"].stale == "" and not any("stale" in n for n in tables[0].notes)

    # the recipe's default changed since the run was trained: marked, with what changed, in md, csv and page
    recipe.write_text(RECIPE.replace("5.0e-5", "1.0e-4"))
    exp = expected_variants([root], api.load_method_config)[str(out.resolve())]
    assert exp.changed == "train.lr 5e-05 -> 0.0001" and exp.variant != rows["sft"].variant
    tables, _ = api.leaderboard([root], tmp_path / "b2", resamples=50)
    rows = {r.label: r for r in tables[0].rows}
    assert rows["sft"].stale.startswith("trained with an older default") and "train.lr" in rows["sft"].stale
    assert rows["base"].stale == ""
    md = (tmp_path / "b2" / "leaderboard.md").read_text()
    assert "sft on tiny-test: stale: trained with an older default" in md
    got = {r["method"]: r for r in csv.DictReader(io.StringIO((tmp_path / "b2" / "leaderboard.csv").read_text()))}
    assert "train.lr" in got["sft"]["stale"] and not got["base"]["stale"]
    assert "class='flag stale'" in (tmp_path / "b2" / "leaderboard.html").read_text()


def test_runs_without_their_recipe_are_said_to_be_unchecked(data_dir, tmp_path):
    root = tmp_path / "runs"
    _run(data_dir, root / "base", {"name": "base", "config": {}, "artifact": {"kind": "none", "config_hash": ""}})
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(RECIPE)
    out = _trained(data_dir, root, recipe)
    res = json.loads((out / "results.json").read_text())
    res["command"] = f"cli.py score {out}"
    (out / "results.json").write_text(json.dumps(res))
    tables, _ = api.leaderboard([root], tmp_path / "b", resamples=50)
    assert {r.label: r for r in tables[0].rows}["sft"].stale == ""
    assert any(n.startswith("stale-row check not possible for sft on tiny-test") for n in tables[0].notes)


def test_committed_science_recipes_are_current():
    """The committed science run's trained units were trained with the config their recipe gives today: no row of the
    committed leaderboard is stale (issue 27). The units whose default an ablation changed were re-run: the relay and
    its control (`layer`, `tags`), LANDeRMT (`layer_metric`) and RaDis's three seeds (`rationale_context`)."""
    science = Path(__file__).resolve().parents[1] / "results" / "science"
    exp = expected_variants([science], api.load_method_config)
    assert exp and all(not e.unknown for e in exp.values())
    assert {Path(k).name for k in exp} >= {"relay-s0", "relay-s0-control", "landermt-s0", "lms-s0", "radis-s2"}
    assert {Path(k).name: e.changed for k, e in exp.items() if e.changed} == {}
    assert "stale" not in (science / "leaderboard.md").read_text()


def test_a_changed_method_default_marks_the_row(data_dir, tmp_path, monkeypatch):
    """The same recipe file, but the method's own default changed since the run (here: sft's train.max_length,
    which the recipe does not set): the row is stale and the note names the field."""
    import dataclasses

    from methods import method_class
    from methods.sft.config import SFTConfig

    root = tmp_path / "runs"
    _run(data_dir, root / "base", {"name": "base", "config": {}, "artifact": {"kind": "none", "config_hash": ""}})
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(RECIPE)
    _trained(data_dir, root, recipe)
    tables, _ = api.leaderboard([root], tmp_path / "b1", resamples=50)
    assert {r.label: r for r in tables[0].rows}["sft"].stale == ""

    default = SFTConfig().train
    train = dataclasses.replace(default, max_length=default.max_length * 2)

    @dataclasses.dataclass
    class NewDefaults(SFTConfig):
        train: TrainConfig = dataclasses.field(default_factory=lambda: dataclasses.replace(train))

    monkeypatch.setattr(method_class("sft"), "Config", NewDefaults)
    tables, _ = api.leaderboard([root], tmp_path / "b2", resamples=50)
    stale = {r.label: r for r in tables[0].rows}["sft"].stale
    assert stale.startswith("trained with an older default") and "train.max_length" in stale
