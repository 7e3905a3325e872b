"""`harness pack` / `unpack`: a finished run's samples as deterministic gzip, read as they are by the leaderboard and
by --drift-ref, refused (one line, exit 2, nothing changed) by what would append to or rewrite them, and restored
byte for byte."""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil

import pytest

from mt_harness.cli import main


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def _files(root) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def base_run(tiny_model, data_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("pack") / "base"
    assert main(["run", "--method", "base", "--model", str(tiny_model), "--tasks", "flores,mtbench", "--langs",
                 "de-en,en", "--limit", "2", "--dtype", "float32", "--threads", "1", "--data-dir", str(data_dir),
                 "--output", str(out)]) == 0
    return out


def test_pack_then_unpack_restores_every_byte(base_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(base_run, run)
    before = _files(run)
    results = json.loads((run / "results.json").read_text())
    assert main(["pack", str(run)]) == 0
    packed = json.loads((run / "results.json").read_text())
    for name, entry in packed["tasks"].items():
        assert entry["samples_file"] == f"{name}/samples.jsonl.gz" and not (run / name / "samples.jsonl").exists()
        plain = gzip.decompress((run / entry["samples_file"]).read_bytes())
        assert plain == before[f"{name}/samples.jsonl"]
        assert entry["samples_sha256"] == results["tasks"][name]["samples_sha256"] == hashlib.sha256(plain).hexdigest()
    gz = _files(run)
    assert main(["pack", str(run)]) == 0  # packing a packed run changes nothing
    assert _files(run) == gz
    assert main(["unpack", str(run)]) == 0
    assert _files(run) == before
    assert main(["pack", str(run)]) == 0
    assert _files(run) == gz  # deterministic: the same records give the same bytes


def test_an_interrupted_pack_is_finished_by_a_rerun(base_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(base_run, run)
    plain = (run / "flores" / "samples.jsonl").read_bytes()
    assert main(["pack", str(run)]) == 0
    packed = _files(run)
    (run / "flores" / "samples.jsonl").write_bytes(plain)  # killed after switching results.json, before the removal
    assert main(["pack", str(run)]) == 0
    assert _files(run) == packed


def test_the_leaderboard_reads_packed_runs_as_plain_ones(base_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(base_run, run)
    assert main(["leaderboard", str(run), "--output", str(tmp_path / "plain"), "--resamples", "50"]) == 0
    assert main(["pack", str(run)]) == 0
    assert main(["leaderboard", str(run), "--output", str(tmp_path / "packed"), "--resamples", "50"]) == 0
    for name in ("leaderboard.md", "leaderboard.csv"):
        assert (tmp_path / "packed" / name).read_text() == (tmp_path / "plain" / name).read_text()
    assert "changed since results.json" not in (tmp_path / "packed" / "leaderboard.md").read_text()


def test_drift_ref_reads_a_packed_base_run(base_run, tiny_model, data_dir, tmp_path):
    ref = tmp_path / "base"
    shutil.copytree(base_run, ref)
    want = json.loads((ref / "results.json").read_text())["tasks"]["mtbench"]["samples_sha256"]
    assert main(["pack", str(ref)]) == 0
    out = tmp_path / "again"
    assert main(["run", "--method", "base", "--model", str(tiny_model), "--tasks", "mtbench", "--limit", "2",
                 "--dtype", "float32", "--threads", "1", "--data-dir", str(data_dir), "--output", str(out),
                 "--drift-ref", str(ref)]) == 0
    drift = json.loads((out / "mtbench" / "drift.json").read_text())
    assert drift["ref"] == str(ref / "mtbench" / "samples.jsonl.gz") and drift["ref_sha256"] == want
    assert drift["drift_nll"] == 0.0 and drift["n_answers"] == 4  # the same weights: two questions, two turns


@pytest.mark.parametrize("command", ["run", "score", "judge"])
def test_writers_refuse_a_packed_run_and_change_nothing(base_run, tiny_model, data_dir, tmp_path, capsys, command):
    run = tmp_path / "run"
    shutil.copytree(base_run, run)
    assert main(["pack", str(run)]) == 0
    packed = _files(run)
    capsys.readouterr()
    argv = (["run", "--method", "base", "--model", str(tiny_model), "--tasks", "flores", "--langs", "de-en",
             "--limit", "2", "--dtype", "float32", "--threads", "1", "--data-dir", str(data_dir), "--output", str(run)]
            if command == "run" else ["score", str(run), "--data-dir", str(data_dir)] if command == "score" else
            ["judge", str(run), "--tasks", "mtbench", "--judge", "hf", "--judge-model", str(tiny_model),
             "--judge-max-tokens", "8", "--threads", "1", "--data-dir", str(data_dir)])
    assert main(argv) == 2
    err = _one_line_error(capsys)
    assert "packed by `harness pack`" in err and f"harness unpack {run}" in err
    assert _files(run) == packed
    assert main(["unpack", str(run)]) == 0
    assert main(argv) == 0  # unpacked, it resumes (nothing left to generate), re-scores or judges


def test_pack_refuses_what_is_not_a_finished_run_or_has_changed(base_run, tmp_path, capsys):
    assert main(["pack", str(tmp_path)]) == 2
    assert "results.json" in _one_line_error(capsys)
    run = tmp_path / "run"
    shutil.copytree(base_run, run)
    with open(run / "mtbench" / "samples.jsonl", "a") as f:  # the last task: flores must not be packed either
        f.write('{"id": "extra"}\n')
    before = _files(run)
    assert main(["pack", str(run)]) == 2
    assert "changed since results.json was written; nothing was packed; run `harness score" in _one_line_error(capsys)
    assert _files(run) == before
