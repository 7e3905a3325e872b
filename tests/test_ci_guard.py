"""CI cannot pass by accident: without the data folder the suite stops with exit 1 instead of skipping."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _pytest(tmp_path, data_dir: Path, require: bool) -> subprocess.CompletedProcess:
    env = {**os.environ, "HARNESS_DATA_DIR": str(data_dir), "HARNESS_REQUIRE_DATA": "1" if require else "0"}
    # one data-dependent test is enough: with the guard it never runs, without it it skips
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "tests/test_contamination.py"], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300)


def test_missing_data_fails_the_session_under_ci(tmp_path):
    proc = _pytest(tmp_path, tmp_path / "no-such-data", require=True)
    assert proc.returncode == 1, proc.stdout[-2000:]
    assert "lacks flores/flores200_dataset/devtest/eng_Latn.devtest" in proc.stdout + proc.stderr


def test_incomplete_data_fails_the_session_under_ci(tmp_path):
    partial = tmp_path / "partial"
    (partial / "flores" / "flores200_dataset" / "devtest").mkdir(parents=True)
    proc = _pytest(tmp_path, partial, require=True)
    assert proc.returncode == 1 and "lacks" in proc.stdout + proc.stderr


def test_without_the_requirement_data_tests_skip(tmp_path):
    proc = _pytest(tmp_path, tmp_path / "no-such-data", require=False)
    assert proc.returncode == 0 and "skipped" in proc.stdout, proc.stdout[-2000:]
