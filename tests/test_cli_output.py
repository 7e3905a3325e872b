"""What a run prints: no third-party deprecation notices or per-load "Loading weights" bars on every run
(mt_harness.cli.quiet_third_party_deprecations, harness.loading.QUIET_BARS); our progress bars stay."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_a_run_prints_no_transformers_deprecation_notices(tiny_model, data_dir, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO), "HARNESS_CACHE": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-m", "mt_harness.cli", "run", "--method", "base", "--tasks", "flores",
                           "--langs", "de-en", "--limit", "2", "--model", str(tiny_model), "--data-dir",
                           str(data_dir), "--output", str(tmp_path / "out"), "--threads", "1"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "out" / "results.json").exists()
    assert "deprecated" not in proc.stderr + proc.stdout, proc.stderr[-2000:]
    assert "Loading weights" not in proc.stderr  # transformers' per-load bar (harness.loading.QUIET_BARS)
    assert "flores generate" in proc.stderr  # our own progress bars stay


def test_the_filter_drops_only_the_known_notices():
    import re

    from mt_harness.cli import _DEPRECATIONS

    assert re.match(_DEPRECATIONS, "`past_key_values` is deprecated and will be removed in version 5.40.0")
    assert re.match(_DEPRECATIONS, "`past_key_values`/`cache_params` are deprecated. Use `cache` instead.")
    assert not re.match(_DEPRECATIONS, "`torch_dtype` is deprecated! Use `dtype` instead!")


def test_main_drops_the_load_bars_even_when_loading_was_imported_first(monkeypatch, capsys):
    """A process that imported harness.loading before `mt_harness.cli.main` set HARNESS_QUIET_LOAD_BARS (pytest
    collecting other test modules, a notebook) got transformers' per-load bars from in-process CLI calls."""
    import pytest

    hf_logging = pytest.importorskip("transformers.utils.logging")
    if not hasattr(hf_logging, "set_tqdm_hook"):
        pytest.skip("transformers < 5 has no tqdm hook")
    import harness.loading
    from mt_harness.cli import main

    monkeypatch.delenv("HARNESS_QUIET_LOAD_BARS", raising=False)
    previous = hf_logging.set_tqdm_hook(None)  # as if harness.loading had been imported without the variable
    try:
        harness.loading.quiet_load_bars()
        assert not hf_logging.tqdm(total=1, desc="Loading weights").disable  # no variable: transformers as it is
        assert main(["ls", "tasks"]) == 0
        assert hf_logging.tqdm(total=1, desc="Loading weights").disable
        assert not hf_logging.tqdm(total=1, desc="flores generate").disable  # only those bars
    finally:
        hf_logging.set_tqdm_hook(previous)
    capsys.readouterr()
