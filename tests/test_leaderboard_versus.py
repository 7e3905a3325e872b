"""The composite-difference table (leaderboard/versus.py): each method's composites minus its sft run's, paired.

Runs are real FLORES scorings of known hypotheses (test_leaderboard.fake_run); "twin" produces exactly sft's outputs,
so its difference must be 0 with a [0, 0] interval, and "worse" must gain less than sft with an interval below 0.
"""

from __future__ import annotations

import csv
import io
import shutil

import numpy as np
import pytest
from test_leaderboard import drop_words, fake_run

from mt_harness.cli import main
from harness.columns import Column
from leaderboard import make_leaderboard, stats
from leaderboard.build import RowResult, Table
from leaderboard.cells import Cell
from leaderboard.page import html_page
from leaderboard.plot import GAIN, LOSS, pareto_png, points
from leaderboard.render import csv_text, markdown
from leaderboard.versus import compare


def sft_like(ref, i):
    return ref if i % 3 else drop_words(2)(ref, i)


@pytest.fixture(scope="module")
def runs(data_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("versus")
    fake_run(data_dir, root / "base", "base", drop_words(2))
    fake_run(data_dir, root / "sft", "sft", sft_like)
    fake_run(data_dir, root / "twin", "twin", sft_like)
    fake_run(data_dir, root / "worse", "worse", lambda ref, i: " ".join(ref.split()[::3]))
    return root


def test_difference_is_paired_and_written(runs, tmp_path):
    tables, written = make_leaderboard([runs], tmp_path, n_boot=200, seed=3)
    t = tables[0]
    assert t.versus_ref == "sft"
    by = {v.row.label: v for v in t.versus}
    assert set(by) == {"twin", "worse"}  # not base, not sft itself
    rows = {r.label: r for r in t.rows}
    twin = by["twin"].cells["translation gain"]
    assert by["twin"].ref is rows["sft"]
    assert twin.delta == 0 and twin.lo == 0 and twin.hi == 0 and twin.crosses_zero
    worse = by["worse"].cells["translation gain"]
    g_w, g_s = rows["worse"].composites["translation gain"], rows["sft"].composites["translation gain"]
    assert worse.delta == pytest.approx(g_w.value - g_s.value)
    assert (worse.lo, worse.hi) == stats.interval(g_w.boot - g_s.boot) and worse.hi < 0
    # pairing: the difference's interval is narrower than one from the two rows' distributions drawn independently
    unpaired = stats.interval(g_w.boot - np.roll(g_s.boot, 1))
    assert worse.hi - worse.lo < unpaired[1] - unpaired[0]
    md = written[0].read_text()
    assert "### Versus sft" in md and "| twin | tiny-test | sft | +0.00 [+0.00, +0.00]† |" in md
    with open(written[1]) as f:
        recs = {r["method"]: r for r in csv.DictReader(f)}
    assert recs["worse"]["versus sft"] == "sft"
    assert float(recs["worse"]["translation gain minus sft"]) == pytest.approx(worse.delta)
    assert recs["sft"]["versus sft"] == "" and recs["base"]["translation gain minus sft"] == ""
    assert "<h3>Versus sft</h3>" in written[2].read_text()


def test_versus_option(runs, tmp_path, capsys):
    tables, written = make_leaderboard([runs], tmp_path / "a", n_boot=50, versus="worse")
    assert {v.row.label for v in tables[0].versus} == {"sft", "twin"} and "### Versus worse" in written[0].read_text()
    tables, written = make_leaderboard([runs], tmp_path / "b", n_boot=50, versus="none")
    assert tables[0].versus == [] and "Versus" not in written[0].read_text()
    assert main(["leaderboard", str(runs), "--output", str(tmp_path / "c"), "--resamples", "50",
                 "--versus", "sfft"]) == 2
    err = capsys.readouterr().err
    assert "--versus sfft: no run of that method" in err and "sft" in err
    assert not (tmp_path / "c" / "leaderboard.md").exists()
    # without an sft run, the default makes no table and no error
    shutil.copytree(runs, tmp_path / "nosft")
    shutil.rmtree(tmp_path / "nosft" / "sft")
    tables, written = make_leaderboard([tmp_path / "nosft"], tmp_path / "d", n_boot=50)
    assert tables[0].versus == [] and "Versus" not in written[0].read_text()


def _row(label, method, seed, cells, gain=None):
    rr = RowResult(label, method, "m", method == "base", cells=cells, seed=seed)
    if gain is not None:
        rr.composites["general-ability loss"] = Cell(gain, gain, boot=np.full(20, gain))
    return rr


def test_reference_is_the_same_seed_and_columns_must_match():
    cols = [Column("A", "a", "a", role="general", family="f"), Column("B", "b", "b", role="general", family="f")]
    both = {"A": Cell(1, 0.1, boot=np.zeros(20)), "B": Cell(1, 0.1, boot=np.zeros(20))}
    rows = [_row("base", "base", None, {}), _row("sft seed 0", "sft", 0, both, 1.0),
            _row("sft seed 1", "sft", 1, both, 3.0), _row("x seed 1", "x", 1, both, 2.0),
            _row("y", "y", 5, both, 2.0), _row("z", "z", 0, {"A": both["A"]}, 2.0)]
    t = Table("s", "", cols, rows, [])
    by = {v.row.label: v for v in compare(t, "sft")}
    assert by["x seed 1"].ref.label == "sft seed 1"
    assert by["x seed 1"].cells["general-ability loss"].delta == pytest.approx(-1.0)  # loses less than sft seed 1
    assert by["y"].ref is None and "none with seed 5" in by["y"].note
    assert by["z"].ref.label == "sft seed 0" and by["z"].cells == {}  # its loss uses column A only
    assert any("z on m versus sft seed 0" in n and "other columns" in n for n in t.notes)


def _seeded(label, method, seed, loss_boot, variant="v"):
    rr = RowResult(label, method, "m", False, seed=seed, variant=variant)
    rr.cells["A"] = Cell(1, 0.1, boot=np.zeros(4))
    rr.composites["general-ability loss"] = Cell(float(loss_boot.mean()), float(loss_boot.mean()), boot=loss_boot)
    return rr


def test_seeds_of_a_method_get_a_paired_seed_mean_row():
    rng = np.random.default_rng(0)
    boots = {(m, sd): rng.normal(loc, 0.3, 200)
             for m, loc in (("sft", 1.5), ("x", 1.0), ("y", 1.2)) for sd in (0, 1, 2)}
    rows = [RowResult("base", "base", "m", True)]
    rows += [_seeded(f"{m} seed {sd}", m, sd, boots[m, sd]) for m in ("sft", "x") for sd in (0, 1, 2)]
    rows += [_seeded(f"y seed {sd}", "y", sd, boots["y", min(sd, 2)]) for sd in (0, 3)]  # seed 3 has no sft run
    t = Table("s", "", [Column("A", "a", "a", role="general", family="f")], rows, [])
    t.versus_ref, t.versus = "sft", compare(t, "sft")
    assert [v.row.label for v in t.versus] == ["x seed 0", "x seed 1", "x seed 2", "x mean of seeds 0, 1, 2",
                                               "y seed 0", "y seed 3"]  # y: one seed with a same-seed sft run only
    mean = t.versus[3]
    assert mean.seeds == (0, 1, 2) and mean.ref.label == "sft mean of seeds 0, 1, 2"
    c = mean.cells["general-ability loss"]
    diffs = [boots["x", sd] - boots["sft", sd] for sd in (0, 1, 2)]
    assert c.delta == pytest.approx(np.mean([d.mean() for d in diffs]))
    assert (c.lo, c.hi) == stats.interval(np.mean(diffs, axis=0))
    # averaging three seeds' paired differences narrows the interval of any one of them
    assert c.hi - c.lo < min(t.versus[i].cells["general-ability loss"].hi - t.versus[i].cells["general-ability loss"].lo
                             for i in range(3))
    assert c.hi < 0  # x loses less than sft, averaged over the seeds
    md = markdown([t], 200, 0)
    assert "| x mean of seeds 0, 1, 2 | m | sft mean of seeds 0, 1, 2 |" in md and "'mean of seeds' row" in md
    recs = {r["method"]: r for r in csv.DictReader(io.StringIO(csv_text([t])))}
    assert recs["x mean of seeds 0, 1, 2"]["status"] == "seed_mean"
    assert float(recs["x mean of seeds 0, 1, 2"]["general-ability loss minus sft"]) == pytest.approx(c.delta)
    assert "x mean of seeds 0, 1, 2" in html_page([t], 200, 0)


def test_no_seed_mean_across_configs():
    b = np.zeros(50)
    rows = [_seeded(f"sft seed {sd}", "sft", sd, b) for sd in (0, 1)]
    rows += [_seeded("x@aa seed 0", "x", 0, b, "aa"), _seeded("x@bb seed 1", "x", 1, b, "bb")]
    t = Table("s", "", [Column("A", "a", "a", role="general", family="f")], rows, [])
    assert [v.row.label for v in compare(t, "sft")] == ["x@aa seed 0", "x@bb seed 1"]


def test_seeds_are_one_point_of_the_pareto_plot(tmp_path):
    rng = np.random.default_rng(1)

    def row(label, method, seed, gain, loss):
        rr = RowResult(label, method, "m", method == "base", seed=seed, variant="v" if seed is not None else "")
        for name, loc in ((GAIN, gain), (LOSS, loss)):
            b = rng.normal(loc, 0.2, 100)
            rr.composites[name] = Cell(float(b.mean()), float(b.mean()), *stats.interval(b), boot=b)
        return rr

    rows = [row("base", "base", None, 0, 0), row("x seed 0", "x", 0, 3.0, 1.5), row("x seed 1", "x", 1, 3.4, 1.6),
            row("lora", "lora", 0, 2.5, 1.2)]
    pts = points(Table("Section 1", "", [], rows, []))
    assert [p.label for p in pts] == ["base", "x (mean of seeds 0, 1)", "lora"]
    x = pts[1]
    assert x.gain.value == pytest.approx((rows[1].composites[GAIN].value + rows[2].composites[GAIN].value) / 2)
    assert (x.loss.lo, x.loss.hi) == stats.interval((rows[1].composites[LOSS].boot + rows[2].composites[LOSS].boot) / 2)
    assert x.seeds == [(rows[i].composites[LOSS].value, rows[i].composites[GAIN].value) for i in (1, 2)]
    pareto_png(Table("Section 1", "", [], rows, []), tmp_path / "pareto.png")
    assert (tmp_path / "pareto.png").stat().st_size > 10_000


def test_a_partner_model_alone_is_not_a_point_and_the_page_maps_points_to_rows():
    """A base row of a model with no method on the board (the relay's partner scored alone) is not plotted: a base
    is its own methods' origin. The page's point -> rows map follows the same rows as the plot."""
    from leaderboard.page_svg import point_rows

    def row(label, method, model, gain, loss):
        rr = RowResult(label, method, model, method == "base", seed=None if method == "base" else 0, variant="v")
        for name, value in ((GAIN, gain), (LOSS, loss)):
            rr.composites[name] = Cell(value, value, value - 0.1, value + 0.1)
        return rr

    rows = [row("base", "base", "partner", 0, 0), row("base", "base", "m", 0, 0), row("sft", "sft", "m", 3, 1.5)]
    t = Table("Section 1", "", [], rows, [])
    assert [(p.label, p.model) for p in points(t)] == [("base", "m"), ("sft", "m")]
    assert point_rows(t) == [[1], [2]]
