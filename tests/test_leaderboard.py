"""Leaderboard: grouping, paired bootstrap (checked against sacrebleu's), Δ tables, composites, outputs.

Runs here go through the real runner (harness.runner.evaluate → samples.jsonl + results.json) with a
test-double backend that returns a transformation of each reference, so scores are real sacrebleu
scores of known hypotheses. The method names written by these tests ("better", "worse") exist only in
tmp folders; nothing here is a real method.
"""

from __future__ import annotations

import csv
import json
import shutil

import pytest
from echo_backend import EchoBackend
from sacrebleu.metrics import CHRF
from sacrebleu.significance import _paired_bs_test, estimate_ci

from mt_harness.cli import main
from harness.data import DataSource
from harness.rundir.context import EvalContext
from harness.runner import evaluate
from tasks import load_task
from leaderboard import make_leaderboard, stats
from leaderboard.cells import get_path, grouped_mean
from leaderboard.columns import declared_columns
from leaderboard.plot import frontier

MODEL = {"name": "tiny-test", "weights_sha256": "a" * 64}


def fake_run(data_dir, out, method, transform, langs=("de-en", "en-de"), limit=12, model=MODEL):
    task = load_task("flores", DataSource.resolve(str(data_dir)))
    task.select(list(langs))
    docs = {d["id"]: d for s in task.selected for d in task.docs(s)[:limit]}
    ctx = EvalContext(out_dir=out, method={"name": method, "config": {"m": method},
                                           "artifact": {"kind": "none",
                                                        "config_hash": method[:4] if method != "base" else ""}},
                      model=model, limit=limit)
    evaluate(task, EchoBackend(docs, lambda doc, i: transform(doc["reference"], i)), ctx)
    return out


def drop_words(keep_every):
    return lambda ref, i: " ".join(w for j, w in enumerate(ref.split()) if j % keep_every)


@pytest.fixture(scope="module")
def runs(data_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("results")
    fake_run(data_dir, root / "m" / "base", "base", drop_words(2))  # every other word
    fake_run(data_dir, root / "m" / "better", "better", lambda ref, i: ref if i % 3 else drop_words(2)(ref, i))
    fake_run(data_dir, root / "m" / "worse", "worse", lambda ref, i: " ".join(ref.split()[::3]))
    return root


def table_rows(tables):
    return {r.label: r for r in tables[0].rows}


def test_bootstrap_matches_sacrebleu_paired_bs(data_dir):
    """Our resampled sufficient statistics reproduce sacrebleu's paired_bs system CI and bootstrap draws."""
    refs = (data_dir / "flores/flores200_dataset/devtest/eng_Latn.devtest").read_text().splitlines()[:40]
    sys_h = [" ".join(r.split()[: max(1, len(r.split()) - i % 4)]) for i, r in enumerate(refs)]
    base_h = [" ".join(r.split()[::2]) for r in refs]
    metric = CHRF(word_order=2)
    bl_stats = metric._extract_corpus_statistics(base_h, [refs])
    bl = metric._aggregate_and_compute(bl_stats)
    _, res = _paired_bs_test({"chrf": (bl_stats, bl)}, "sys", sys_h, [refs], {"chrf": metric}, n_samples=300, seed=7)
    counts = stats.resample_counts(len(refs), 300, 7)  # no salt: the same draws as sacrebleu's seed
    boot = stats.corpus_boot(metric, stats.corpus_stats(metric, sys_h, refs), counts)
    mean, ci = estimate_ci(boot)
    assert mean == pytest.approx(res["chrf"].mean, abs=1e-4) and ci == pytest.approx(res["chrf"].ci, abs=1e-4)
    full = stats.corpus_score(metric, stats.corpus_stats(metric, sys_h, refs))
    assert full == pytest.approx(metric.corpus_score(sys_h, [refs]).score)


def test_metric_rebuilt_from_signature_matches_results(runs):
    res = json.loads((runs / "m" / "base" / "results.json").read_text())
    for _subset, m in res["tasks"]["flores"]["metrics"].items():
        for name in ("bleu", "chrf"):
            metric = stats.metric_from_signature(name, m["signatures"][name])
            assert str(metric.get_signature()) == m["signatures"][name]


def test_leaderboard_deltas_intervals_and_files(runs, tmp_path):
    tables, written = make_leaderboard([runs], tmp_path, n_boot=200, seed=1)
    assert len(tables) == 1
    rows = table_rows(tables)
    assert set(rows) == {"base", "better", "worse"}
    base_res = json.loads((runs / "m" / "base" / "results.json").read_text())["tasks"]["flores"]["summary"]
    better_res = json.loads((runs / "m" / "better" / "results.json").read_text())["tasks"]["flores"]["summary"]
    chrf = rows["better"].cells["chrF++"]
    assert rows["base"].cells["chrF++"].value == pytest.approx(base_res["chrf"])  # recomputed = reported
    assert chrf.delta == pytest.approx(better_res["chrf"] - base_res["chrf"])
    assert chrf.delta > 0 and chrf.lo > 0 and chrf.lo <= chrf.delta <= chrf.hi
    worse = rows["worse"].cells["BLEU en-x"]
    assert worse.delta < 0 and worse.hi < 0
    assert rows["better"].composites["translation gain"].value > 0 > rows["worse"].composites["translation gain"].value
    assert "general-ability loss" not in rows["better"].composites  # no general task in these runs
    md = written[0].read_text()
    assert "| better | tiny-test |" in md and "chrF++ x-en" in md and "MGSM" not in md
    # an identical method: Δ 0 and an interval containing 0, marked with †
    assert rows["base"].cells["chrF++"].delta is None
    with open(written[1]) as f:
        recs = {r["method"]: r for r in csv.DictReader(f)}
    assert float(recs["better"]["chrF++ delta"]) == pytest.approx(chrf.delta)
    html = written[2].read_text()
    assert "<script>" in html and "http" not in html.split("<body>")[1]
    assert written[3].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_pairing_by_id_and_dagger_for_same_outputs(runs, tmp_path):
    """A copy of base relabelled as a method, with its samples shuffled: Δ exactly 0, interval [0, 0]†."""
    root = tmp_path / "r"
    shutil.copytree(runs / "m" / "base", root / "base")
    shutil.copytree(runs / "m" / "base", root / "same")
    res = json.loads((root / "same" / "results.json").read_text())
    res["method"] = {"name": "same", "config": {"x": 1}, "artifact": {"config_hash": "same"}}
    (root / "same" / "results.json").write_text(json.dumps(res))
    lines = (root / "same" / "flores" / "samples.jsonl").read_text().splitlines()
    (root / "same" / "flores" / "samples.jsonl").write_text("\n".join(reversed(lines)) + "\n")
    tables, written = make_leaderboard([root], tmp_path / "out", n_boot=100)
    cell = table_rows(tables)["same"].cells["chrF++"]
    assert cell.delta == 0 and cell.lo == 0 and cell.hi == 0 and cell.crosses_zero
    assert "+0.00 [+0.00, +0.00]†" in written[0].read_text()


def test_incomparable_runs_go_to_separate_sections(runs, data_dir, tmp_path):
    root = tmp_path / "r"
    shutil.copytree(runs / "m", root / "m")
    fake_run(data_dir, root / "scratch" / "base", "base", drop_words(2), langs=("de-en",), limit=5)
    tables, written = make_leaderboard([root], tmp_path / "out", n_boot=50)
    assert len(tables) == 2
    assert [len(t.rows) for t in tables] == [3, 1]
    assert "not comparable with section 1" in tables[1].title and "limit 5 vs 12" in tables[1].title
    # a method without a comparable base gets values but no Δ, and says so
    fake_run(data_dir, root / "scratch" / "lonely", "lonely", drop_words(2), langs=("fr-en",), limit=5)
    tables, _ = make_leaderboard([root / "scratch"], tmp_path / "out2", n_boot=50)
    lonely = [r for t in tables for r in t.rows if r.method == "lonely"][0]
    assert lonely.cells["chrF++"].value > 0 and lonely.cells["chrF++"].delta is None
    assert any("no `base` run" in n for t in tables for n in t.notes)


def test_other_base_model_is_not_used_as_reference(runs, data_dir, tmp_path):
    root = tmp_path / "r"
    shutil.copytree(runs / "m" / "better", root / "better")
    fake_run(data_dir, root / "base-other", "base", drop_words(2), model={"name": "other", "weights_sha256": "b" * 64})
    tables, _ = make_leaderboard([root], tmp_path / "out", n_boot=50)
    better = [r for t in tables for r in t.rows if r.method == "better"][0]
    assert better.cells["chrF++"].delta is None


def test_cli_writes_files_and_errors_cleanly(runs, tmp_path, capsys):
    assert main(["leaderboard", str(runs), "--output", str(tmp_path), "--resamples", "50"]) == 0
    assert (tmp_path / "leaderboard.md").exists() and (tmp_path / "pareto.png").exists()
    assert main(["leaderboard", str(tmp_path / "nothing"), "--output", str(tmp_path)]) == 2
    assert "no such results.json" in capsys.readouterr().err


def test_declared_columns_are_unique_and_frontier():
    cols = declared_columns()  # what every task in tasks/ declares
    labels = [c.label for c in cols]
    assert len(labels) == len(set(labels)) and all(c.task for c in cols)
    assert all(c.kind in ("corpus", "mean", "summary", "drift") and c.scale > 0 for c in cols)
    gsm8k = [c for c in cols if c.task == "gsm8k"]
    assert [(c.key, c.role, c.family) for c in gsm8k] == [("exact_match_flexible", "general", "math")]
    rec = {"judgment": {"turns": [{"score": 8}, {"score": None}, {"score": 5}]}, "correct": {"flexible": True}}
    assert get_path(rec, "judgment.turns[*].score") == 6.5 and get_path(rec, "correct.flexible") is True
    assert get_path(rec, "scores.rougeL") is None
    assert grouped_mean({"a": 1.0, "b": 3.0, "c": 10.0}, [["a", "b"], ["c"]]) == 6.0  # mean of group means
    pts = [(0.0, 0.0), (1.0, 2.0), (2.0, 1.0), (0.5, -1.0), (3.0, 3.0)]
    assert frontier(pts) == [0, 1, 4]


def test_labels_of_coinciding_points_are_stacked():
    from leaderboard.plot import near_before

    pts = [(0.0, 0.0), (-3.1, 2.45), (0.0, 0.04), (0.0, -1.18), (0.01, 0.0)]  # base, sft, lora, radis, another
    assert [len(near_before(pts, i)) for i in range(len(pts))] == [0, 0, 1, 0, 2]


def test_seeds_are_rows_and_their_spread_is_noted(data_dir, tmp_path):
    """One config trained with three seeds: three rows labelled by seed, and a note with the seed spread of the
    translation-gain composite (mean, sd, range of the three rows' values)."""
    task = load_task("flores", DataSource.resolve(str(data_dir)))
    task.select(["de-en"])
    docs = {d["id"]: d for d in task.docs("de-en")[:12]}
    fake_run(data_dir, tmp_path / "r" / "base", "base", drop_words(2), langs=("de-en",))
    for seed, keep in ((0, 3), (1, 4), (2, 5)):
        ctx = EvalContext(out_dir=tmp_path / "r" / f"tuned-{seed}", seed=seed, limit=12, model=MODEL,
                          method={"name": "tuned", "config": {"lr": 1, "training_data": {"fingerprint": f"f{seed}"}},
                                  # as `harness train` records it: the artifact's config hash covers the seed
                                  "artifact": {"kind": "full", "config_hash": f"cfg1-{seed}", "hash": f"w{seed}"}})
        evaluate(task, EchoBackend(docs, lambda doc, i, k=keep: drop_words(k)(doc["reference"], i)), ctx)
    tables, written = make_leaderboard([tmp_path / "r"], tmp_path / "out", n_boot=50)
    rows = table_rows(tables)
    assert set(rows) == {"base", "tuned seed 0", "tuned seed 1", "tuned seed 2"}
    gains = [rows[f"tuned seed {s}"].composites["translation gain"].value for s in range(3)]
    note = next(n for n in tables[0].notes if "over 3 seeds" in n)
    assert f"mean {sum(gains) / 3:+.2f}" in note and f"range {min(gains):+.2f} to {max(gains):+.2f}" in note
    assert note in written[0].read_text()
