"""The train/test overlap guard on the real ALMA files (which end with FLORES dev + devtest)."""

from __future__ import annotations

import pytest

from mt_harness.cli import main
from harness.data import DataSource
from harness.errors import HarnessError
from tasks import load_task
from harness.training.contamination import guard, normalise
from harness.training.data import TrainDataConfig, load_training_data


@pytest.fixture
def flores_de_en(data_dir):
    task = load_task("flores", DataSource(data_dir))
    task.select(["de-en"])
    return task


def test_overlap_with_flores_is_refused_on_real_alma(data_dir, flores_de_en):
    examples, _ = load_training_data(TrainDataConfig(pairs=["de-en"], exclude_flores=False), DataSource(data_dir))
    with pytest.raises(HarnessError) as e:
        guard(examples, [flores_de_en], drop=False)
    msg = str(e.value)
    assert "1012 pairs" in msg and "train.de-en.{de,en}" in msg and "--drop-overlap" in msg and "\n" not in msg


def test_drop_overlap_removes_exactly_the_devtest_lines(data_dir, flores_de_en):
    examples, _ = load_training_data(TrainDataConfig(pairs=["de-en"], exclude_flores=False), DataSource(data_dir))
    kept, report = guard(examples, [flores_de_en], drop=True)
    assert report["overlap"] == report["dropped"] == 1012 and len(kept) == len(examples) - 1012
    refs = {normalise(d["reference"]) for d in flores_de_en.docs("de-en")}
    assert not any(normalise(e.reference) in refs for e in kept)


def test_exclude_flores_drops_dev_and_devtest(data_dir, flores_de_en):
    examples, stats = load_training_data(TrainDataConfig(pairs=["de-en", "en-de"]), DataSource(data_dir))
    assert stats["flores_excluded"] == 2 * (997 + 1012)  # both directions of the same file
    _, report = guard(examples, [flores_de_en], drop=False)
    assert report["overlap"] == 0 and report["checked"] == len(examples)


def test_cli_train_refuses_with_one_line_error(data_dir, tiny_model, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path))
    cfg = tmp_path / "leak.yaml"
    cfg.write_text("data:\n  pairs: [en-de]\n  exclude_flores: false\n")
    rc = main(["train", "--method", "sft", "--tasks", "flores", "--langs", "en-de", "--data-dir", str(data_dir),
               "--method-config", str(cfg), "--model", str(tiny_model)])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith("error: training data overlaps") and len(err.splitlines()) == 1


def test_other_corpora_load(data_dir):
    src = DataSource(data_dir)
    m30k, _ = load_training_data(TrainDataConfig(sources=["multi30k"], pairs=["en-de"]), src)
    wmt, _ = load_training_data(TrainDataConfig(sources=["wmt_newstest"], pairs=["de-en"]), src)
    assert len(m30k) == 29000 and m30k[0].src == "en" and m30k[0].tgt == "de"
    assert len(wmt) == 19074 and wmt[0].tgt == "en" and all(e.source and e.reference for e in wmt[:100])
