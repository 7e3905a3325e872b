"""The science run's plan (results/science.py): every recipe it uses loads strictly, and --plan lists every unit
without running anything."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mt_harness.api import load_method_config
from methods import get_method

REPO = Path(__file__).resolve().parent.parent
XBRIDGE = "no NMT encoder-decoder is reachable offline (methods/xbridge/README.md)"


@pytest.mark.parametrize("method", ["sft", "lora", "radis", "landermt", "lms", "relay"])
def test_equal_budget_recipes_load(method):
    cfg = load_method_config(get_method(method), REPO / "methods" / method / "recipes" / "cpu-150.yaml", None)
    assert cfg.train.max_steps == 150 and cfg.train.batch_size * cfg.train.grad_accum == 8
    assert sorted(cfg.data.pairs) == ["de-en", "en-de", "en-zh", "zh-en"] and cfg.data.max_per_pair == 300


def test_plan_lists_every_unit_and_runs_nothing():
    out = subprocess.run([sys.executable, "results/science.py", "--plan"], cwd=REPO, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    names = [line.split()[0] for line in out.stdout.splitlines() if "seed" in line]
    assert names == ["base", "sft-s0", "radis-s0", "lora-s0", "landermt-s0", "lms-s0", "relay-s0", "sft-s1", "sft-s2",
                     "radis-s1", "radis-s2"]
    assert f"xbridge      xbridge   not run: {XBRIDGE}" in out.stdout.splitlines()
    bad = subprocess.run([sys.executable, "results/science.py", "--only", "nope", "--plan"], cwd=REPO,
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and "unknown unit" in bad.stderr


def _science(monkeypatch, tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("science_driver", REPO / "results" / "science.py")
    mod = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, mod)  # dataclasses look their module up while the file executes
    spec.loader.exec_module(mod)
    monkeypatch.setattr(mod, "ROOT", tmp_path)
    monkeypatch.setattr(mod, "OUT", tmp_path / "science")
    return mod


@pytest.mark.parametrize("retrained, moved", [("aaa111", False), ("bbb222", True)])
def test_resume_keeps_evaluations_only_of_the_same_weights(monkeypatch, tmp_path, retrained, moved):
    """A new machine retrains a half-evaluated unit; evaluations of other weights are moved aside, not mixed."""
    import json

    sci = _science(monkeypatch, tmp_path)
    unit = sci.Unit("sft-s0", "sft", 0)
    unit.out.mkdir(parents=True)
    (unit.out / "phases.json").write_text(json.dumps({"train": {"seconds": 1, "artifact_hash": "aaa111"},
                                                      "flores": {"seconds": 2}}))
    calls = []

    class Done:
        returncode, stderr = 0, ""

        def __init__(self, cmd):
            phase = "train" if "train" in cmd[3:4] else cmd[cmd.index("--tasks") + 1]
            calls.append(phase)
            self.stdout = f"artifact: /c/a b (kind full, config hash c0ffee, hash {retrained})\n"

    monkeypatch.setattr(sci.subprocess, "run", lambda cmd, **kw: Done(cmd))
    monkeypatch.setattr(sci, "record", lambda *a, **k: None)  # phases stay pending: each runs once here
    monkeypatch.setattr(sci, "EVAL", {"flores": sci.EVAL["flores"], "ifeval": sci.EVAL["ifeval"]})
    sci.run_unit(unit, [unit], 1, 0.0)
    stale = tmp_path / "science" / "sft-s0.stale-aaa111"
    assert stale.exists() == moved
    # the retraining check ran first; then the pending phases (all of them again when the weights changed)
    assert calls == (["train", "train", "flores", "ifeval"] if moved else ["train", "ifeval"])


def test_xbridge_is_never_run_and_its_not_run_json_is_written_by_a_run_and_report(monkeypatch, tmp_path, capsys):
    """--plan writes nothing; a run writes science/xbridge/not_run.json (the leaderboard's "not run" row) and never
    starts an xbridge phase; --report writes it too (kept if present) and prints the unit as not run."""
    from harness.rundir.read import read_not_run

    sci = _science(monkeypatch, tmp_path)
    path = tmp_path / "science" / "xbridge" / "not_run.json"
    monkeypatch.setattr(sys, "argv", ["science.py", "--plan"])
    assert sci.main() == 0 and not path.exists()
    started = []
    monkeypatch.setattr(sci, "run_unit", lambda unit, *a: started.append(unit.name))
    monkeypatch.setattr(sys, "argv", ["science.py"])
    assert sci.main() == 0
    assert read_not_run(path) == {"schema": "mt-harness/not-run/v1", "method": "xbridge", "model": sci.MODEL,
                                  "reason": XBRIDGE}
    assert "xbridge" not in started and len(started) == len(sci.UNITS) - 1
    path.unlink()
    monkeypatch.setattr(sys, "argv", ["science.py", "--report"])
    assert sci.main() == 0 and read_not_run(path)["reason"] == XBRIDGE
    row = f"| xbridge | not run: {XBRIDGE} |" + " |" * 6
    assert row in capsys.readouterr().out.splitlines() and row in (tmp_path / "COST.md").read_text()


def test_report_adds_and_footnotes_an_interrupted_attempts_estimated_time(monkeypatch, tmp_path):
    """A phase whose interrupted attempt was not logged: the estimate is added to its cell and the unit's total, the
    cell is starred, and the note that says how it was estimated is printed below the table."""
    import json

    sci = _science(monkeypatch, tmp_path)
    unit = next(u for u in sci.UNITS if u.name == "lora-s0")
    unit.out.mkdir(parents=True)
    (unit.out / "phases.json").write_text(json.dumps({
        "train": {"seconds": 1800.0}, "flores": {"seconds": 600.0, "estimated_extra_seconds": 300.0,
                                                 "note": "an earlier attempt, estimated"}}))
    text = sci.report(sci.UNITS)
    row = next(line for line in text.splitlines() if line.startswith("| lora-s0 |"))
    assert row.startswith("| lora-s0 | 0h30m | 0h15m* | pending |") and row.endswith("| 0h45m |")
    assert "\\* lora-s0/flores: an earlier attempt, estimated" in text.splitlines()
