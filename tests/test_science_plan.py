"""The science run's plan (results/science.py): every recipe it uses loads strictly, and --plan lists every unit
without running anything."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from harness.api import load_method_config
from methods import get_method

REPO = Path(__file__).resolve().parent.parent


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
    bad = subprocess.run([sys.executable, "results/science.py", "--only", "nope", "--plan"], cwd=REPO,
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and "unknown unit" in bad.stderr
