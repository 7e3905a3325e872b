"""Study files: the committed science and ablation studies reproduce their recorded commands and cost report, the
equal-budget recipes load, method entries on their own models, and bad study files are one-line errors (run without
training anything; tests/test_study.py runs tiny studies end to end)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.errors import HarnessError
from harness.rundir.phases import read_phases
from mt_harness.cli import main

REPO = Path(__file__).resolve().parent.parent
SCIENCE = REPO / "studies" / "science-cpu150.yaml"


def test_science_study_plans_exactly_the_recorded_commands():
    """studies/science-cpu150.yaml reproduces the committed science run: the same units and phases, and every
    phase's command equal to the one its phases.json recorded (one torch thread per phase)."""
    from mt_harness.study.plan import build_units
    from mt_harness.study.spec import load_study

    units = build_units(load_study(SCIENCE))
    assert [u.key for u in units] == [f"smollm2-135m-instruct/{u}" for u in (
        "base", "sft-s0", "radis-s0", "lora-s0", "landermt-s0", "lms-s0", "relay-s0", "relay-s0-control", "sft-s1",
        "sft-s2", "radis-s1", "radis-s2", "xbridge")] + ["gemma3-270m/base"]
    checked = 0
    for u in units:
        recorded = read_phases(u.out)
        assert set(recorded) == {p.name for p in u.phases}, u.name
        for p in u.phases:
            assert p.command(1) == recorded[p.name]["command"], p.id
            checked += 1
    assert checked == 64


@pytest.mark.parametrize("method", ["sft", "lora", "radis", "landermt", "lms", "relay"])
def test_equal_budget_recipes_load(method):
    from mt_harness.api import load_method_config
    from methods import get_method

    cfg = load_method_config(get_method(method), REPO / "methods" / method / "recipes" / "cpu-150.yaml", None)
    assert cfg.train.max_steps == 150 and cfg.train.batch_size * cfg.train.grad_accum == 8
    assert sorted(cfg.data.pairs) == ["de-en", "en-de", "en-zh", "zh-en"] and cfg.data.max_per_pair == 300


@pytest.mark.parametrize("text, error", [
    ("output: o\nmodels: [m]\nevaluation: []\nmethods: []\nbogus: 1\n", "unknown key 'bogus'"),
    ("output: o\nmodels: [m]\nmodels: [n]\nevaluation: []\nmethods: []\n", "duplicate key 'models'"),
    ("output: o\nmodels: [m]\nevaluation: [{name: a, tasks: [flores]}]\nmethods: [{method: sft, evaluation: [b]}]\n",
     "methods[0].evaluation: no block named 'b'"),
    ("output: o\nmodels: [m]\nevaluation: [{name: train, tasks: [flores]}]\nmethods: []\n", "evaluation[0].name"),
    ("output: o\nmodels: [m]\nevaluation: []\nmethods: [{method: sft}, {method: sft}]\n", "repeats another unit"),
    ("output: o\nmodels: [m]\nevaluation: []\nmethods: [{method: sft, seeds: [0, 1], name: x}]\n",
     "must contain {seed}"),
    ("output: o\nmodels: [m]\nevaluation: []\nmethods: [{method: sft, settings: {batch: 2}}]\n", "unknown key 'batch'"),
    ("output: o\nmodels: [m]\nsettings: {decode_attention: fast}\nevaluation: []\nmethods: []\n",
     "settings.decode_attention: 'fast' is not one of 'sdpa', 'matmul'"),
    ("output: o\nmodels: [m]\nevaluation: [{name: m, tasks: [mtbench]}]\nmethods: [{method: sft}]\n",
     "add `- {method: base"),
    ("output: o\nmodels: [m]\nevaluation: []\nmethods: [{method: relay, options: {layr: 3}}]\n",
     "methods[0].options: --set: unknown key 'layr'"),
    ("output: o\nmodels: [m]\nevaluation: []\nmethods: [{method: relay, options: {layer: 1.5}}]\n",
     "layer: 1.5 must be an int"),
    ("output: o\nmodels: [m]\nevaluation: []\nmethods: [{method: base, models: []}]\n",
     "methods[0].models: give distinct models"),
    ("output: o\nmodels: [m]\nevaluation: []\nmethods: [{method: base, name: b}, {method: base, name: b, models: [m]}]"
     "\n",
     "repeats another unit's of m"),
])
def test_bad_study_files_are_one_line_errors(tmp_path, text, error, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    assert main(["study", str(path), "--dry-run"]) == 2
    err = capsys.readouterr().err.strip()
    assert error in err, err
    assert len(err.splitlines()) == 1


def test_ablation_study_arms_are_options_recorded_as_set_flags():
    """studies/ablation-relay.yaml: each arm's `options` become `--set` flags of its commands (what results.json
    records, so the stale-row check rebuilds the arm's recipe) and reach the phase's RunSpec as method options."""
    from mt_harness.api import load_method_config
    from methods import get_method
    from mt_harness.study.plan import build_units
    from mt_harness.study.run import payload
    from mt_harness.study.spec import load_study

    spec = load_study(REPO / "studies" / "ablation-relay.yaml")
    units = {u.name: u for u in build_units(spec)}
    middle = units["layer-middle-control"].phases
    train, evaluate = middle
    assert train.command(2)[:2] == ["harness", "train"] and "--set" in train.command(2)
    cmd = evaluate.command(2)
    assert [cmd[i + 1] for i, a in enumerate(cmd) if a == "--set"] == ["layer=0.5", "control=shuffled_source"]
    fields = payload(spec, evaluate, 2, "mt_harness.api")["spec"]
    assert fields["method_options"] == {"layer": 0.5, "control": "shuffled_source"}
    cfg = load_method_config(get_method("relay"), fields["method_config"], None, fields["method_options"])
    assert (cfg.layer, cfg.control, cfg.train.max_steps) == (0.5, "shuffled_source", 150)
    assert "--set" not in units["layer-last"].phases[1].command(2)
    assert fields["settings"]["decode_attention"] == "sdpa"
    spec.settings.decode_attention = "matmul"  # settable per study (and per method entry's settings)
    phase = next(u for u in build_units(spec) if u.name == "layer-middle").phases[1]
    assert payload(spec, phase, 2, "mt_harness.api")["spec"]["settings"]["decode_attention"] == "matmul"
    assert "--decode-attention" in phase.command(2)


def test_an_entry_can_run_on_its_own_models(tmp_path):
    """`models:` on a method entry (the relay's partner model alone, in the science study): its units go to that
    model's folder only, the study's models keep theirs, and each model's drift phases wait for its own base."""
    from mt_harness.study.plan import build_units
    from mt_harness.study.spec import load_study

    path = tmp_path / "s.yaml"
    path.write_text("output: out\nmodels: [m]\nevaluation: [{name: chat, tasks: [mtbench]}, {name: mt, tasks: "
                    "[flores]}]\nmethods: [{method: base, name: base}, {method: sft},"
                    " {method: base, name: base, models: [g]},"
                    " {method: sft, models: [m, g], evaluation: [mt]}]\n")
    with pytest.raises(HarnessError, match="repeats another unit's of m"):
        load_study(path).validate("s.yaml")
    path.write_text(path.read_text().replace("{method: sft, models: [m, g]", "{method: sft, name: sft-g, models: [g]"))
    spec = load_study(path)
    spec.validate("s.yaml")
    units = build_units(spec)
    assert [u.key for u in units] == ["m/base", "m/sft-s0", "g/base", "g/sft-g"]
    assert [p.name for p in units[2].phases] == ["chat", "mt"] and units[2].out == Path("out/g/base")
    chat = units[1].phases[1]
    assert chat.deps == ["m/sft-s0/train", "m/base/chat"] and chat.drift_ref == Path("out/m/base")
    assert [p.name for p in units[3].phases] == ["train", "mt"] and units[3].phases[0].command(1)[5] == "g"


def test_unknown_method_is_an_error_before_any_work(tmp_path):
    from mt_harness import api

    path = tmp_path / "s.yaml"
    path.write_text("output: o\nmodels: [m]\nevaluation: []\nmethods: [{method: nope}]\n")
    with pytest.raises(HarnessError, match="nope"):
        api.study(path, dry_run=True)


@pytest.mark.parametrize("study", sorted((REPO / "studies").glob("*.yaml")), ids=lambda p: p.stem)
def test_committed_cost_reports_are_regenerated_from_the_phases_records(study):
    """COST.md is generated: from the committed units' phases.json (starred cells and their notes for estimated
    interrupted attempts, stopped time, and phases run with another thread count than the study's) it is the committed
    file, and every committed (packed) phase counts as done."""
    from mt_harness.study.cost import report
    from mt_harness.study.plan import plan
    from mt_harness.study.spec import load_study

    spec = load_study(study)
    units = plan(spec)
    assert all(p.done for u in units for p in u.phases)
    text = report(spec, units, spec.workers)
    assert text == (REPO / spec.output / "COST.md").read_text()
    if study.stem == "science-cpu150":
        assert "| relay-s0 | 0h00m* | 0h57m* | n/a | n/a | n/a | n/a | 0h57m |" in text.splitlines()
    if study.stem == "ablation-relay":  # round 3 ran with one thread per process where the study says two
        assert "\\* lr-1e-4/train: ran with 1 torch thread(s), not the study's 2" in text.splitlines()
