"""A method deliberately not run (OUT/not_run.json): one "not run" row with the reason in the section of its model
(md, csv, html) and a note; never a point of the Pareto plot nor part of any statistic. A malformed file is a
one-line error naming it. Runs go through the real runner with a test-double backend (leaderboard tests' fake_run)."""

from __future__ import annotations

import csv
import json
import re
import shutil

import pytest
from test_leaderboard import drop_words, fake_run

from mt_harness.cli import main
from harness.errors import HarnessError
from harness.rundir.read import NOT_RUN_SCHEMA, read_not_run
from harness.rundir.write import write_not_run
from leaderboard import make_leaderboard
from leaderboard.build import RowResult, Table
from leaderboard.cells import Cell
from leaderboard.collect import NotRun
from leaderboard.notrun import attach
from leaderboard.plot import GAIN, LOSS, pareto_png

REASON = "no NMT encoder-decoder is reachable offline (methods/xbridge/README.md)"


@pytest.fixture(scope="module")
def runs(data_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("results")
    fake_run(data_dir, root / "base", "base", drop_words(2), langs=("de-en",), limit=8)
    fake_run(data_dir, root / "better", "better", lambda ref, i: ref if i % 3 else drop_words(2)(ref, i),
             langs=("de-en",), limit=8)
    return root


def test_not_run_row_in_every_file_and_nowhere_in_the_statistics(runs, tmp_path):
    root = tmp_path / "r"
    shutil.copytree(runs, root)
    plain, _ = make_leaderboard([root], tmp_path / "plain", n_boot=50, seed=1)
    write_not_run(root / "xbridge", "xbridge", "tiny-test", REASON)
    write_not_run(root / "elsewhere" / "xbridge", "xbridge", "absent-model", "not run here either")
    tables, written = make_leaderboard([root], tmp_path / "out", n_boot=50, seed=1)

    assert len(tables) == 1 and [r.label for r in tables[0].rows] == ["base", "better", "xbridge"]
    row = tables[0].rows[-1]
    assert row.not_run == REASON and row.model == "tiny-test" and not row.cells and not row.composites
    # the scored rows are exactly what they are without the not-run entry
    for a, b in zip(plain[0].rows, tables[0].rows):
        assert a.label == b.label and {k: (c.value, c.delta, c.lo, c.hi) for k, c in a.cells.items()} == \
            {k: (c.value, c.delta, c.lo, c.hi) for k, c in b.cells.items()}
    note = f"xbridge on tiny-test: not run: {REASON} ({root.resolve() / 'xbridge' / 'not_run.json'})"
    assert note in tables[0].notes
    # a not-run entry of a model these folders have no results of: a note, no row, no crash
    assert any(n.startswith("xbridge on absent-model: not run: not run here either") and "no row" in n
               for n in tables[0].notes)

    md = written[0].read_text()
    assert f"| xbridge | tiny-test | not run: {REASON} |" in md and f"- {note}" in md
    assert md.count("| xbridge | tiny-test |") == 2  # Δ table and scores table
    with open(written[1]) as f:
        recs = {r["method"]: r for r in csv.DictReader(f)}
    assert recs["xbridge"]["status"] == "not_run" and recs["xbridge"]["reason"] == REASON
    assert recs["xbridge"]["chrF++"] == "" and recs["xbridge"]["translation gain delta"] == ""
    assert recs["better"]["status"] == "run" and recs["better"]["reason"] == "" and float(recs["better"]["chrF++"]) > 0
    html = written[2].read_text()
    assert len(re.findall(f'<td class="nr" colspan="\\d+">not run: {re.escape(REASON)}</td>', html)) == 2
    assert "absent-model" in html


def test_not_run_rows_are_no_points_of_the_pareto_plot(tmp_path, monkeypatch):
    import matplotlib.axes

    both = {GAIN: Cell(0.0), LOSS: Cell(0.0)}
    rows = [RowResult("base", "base", "m", True, composites=both),
            RowResult("sft", "sft", "m", False,
                      composites={GAIN: Cell(2.0, 2.0, 1.0, 3.0), LOSS: Cell(1.0, 1.0, 0.0, 2.0)})]
    table = Table("Section 1", "", [], rows, [])
    attach([table], [NotRun(tmp_path / "not_run.json", "xbridge", "m", REASON)])
    assert [r.label for r in table.rows] == ["base", "sft", "xbridge"]
    plotted = []
    errorbar = matplotlib.axes.Axes.errorbar
    monkeypatch.setattr(matplotlib.axes.Axes, "errorbar",
                        lambda self, *a, **k: plotted.append(k.get("label")) or errorbar(self, *a, **k))
    pareto_png(table, tmp_path / "pareto.png")
    assert plotted == ["1  base", "2  sft"]


@pytest.mark.parametrize("content, fault", [
    ("{not json", "not valid JSON"),
    (json.dumps({"schema": NOT_RUN_SCHEMA, "method": "xbridge", "model": "tiny-test"}), "missing or empty reason"),
    (json.dumps({"schema": NOT_RUN_SCHEMA, "method": "xbridge", "model": "tiny-test", "reason": "r", "why": 1}),
     "unknown why"),
    (json.dumps({"schema": "mt-harness/results/v1", "method": "xbridge", "model": "tiny-test", "reason": "r"}),
     "expected 'mt-harness/not-run/v1'"),
    (json.dumps({"schema": NOT_RUN_SCHEMA, "method": "xbridge", "model": "tiny-test", "reason": "a\nb"}),
     "several lines"),
    (json.dumps(["xbridge"]), "not a JSON object"),
])
def test_malformed_not_run_is_a_one_line_error_naming_the_file(runs, tmp_path, content, fault):
    root = tmp_path / "r"
    shutil.copytree(runs, root)
    bad = root / "xbridge" / "not_run.json"
    bad.parent.mkdir()
    bad.write_text(content)
    with pytest.raises(HarnessError) as err:
        make_leaderboard([root], tmp_path / "out", n_boot=50)
    msg = str(err.value)
    assert msg.startswith(f"{bad.resolve()}: ") and fault in msg and "\n" not in msg
    assert f'write it as {{"schema": "{NOT_RUN_SCHEMA}"' in msg
    assert not (tmp_path / "out" / "leaderboard.md").exists()


def test_folder_with_results_and_not_run_is_refused(runs, tmp_path, capsys):
    root = tmp_path / "r"
    shutil.copytree(runs, root)
    (root / "better" / "not_run.json").write_text(json.dumps(
        {"schema": NOT_RUN_SCHEMA, "method": "better", "model": "tiny-test", "reason": "r"}))
    assert main(["leaderboard", str(root), "--output", str(tmp_path / "out"), "--resamples", "50"]) == 2
    err = capsys.readouterr().err.strip()
    assert "holds both results.json and not_run.json" in err and str((root / "better").resolve()) in err
    assert len(err.splitlines()) == 1
    with pytest.raises(HarnessError, match="holds results.json"):
        write_not_run(root / "base", "base", "tiny-test", "r")


def test_write_not_run_keeps_an_existing_file_and_checks_its_reason(tmp_path):
    path = write_not_run(tmp_path / "x", "xbridge", "tiny-test", REASON)
    assert read_not_run(path) == {"schema": NOT_RUN_SCHEMA, "method": "xbridge", "model": "tiny-test",
                                  "reason": REASON}
    before = path.read_text()
    write_not_run(tmp_path / "x", "xbridge", "tiny-test", "another reason")
    assert path.read_text() == before
    with pytest.raises(HarnessError, match="several lines"):
        write_not_run(tmp_path / "y", "xbridge", "tiny-test", "two\nlines")
    assert not (tmp_path / "y" / "not_run.json").exists()


def test_a_folder_with_its_own_board_is_searched_only_when_named(runs, tmp_path, data_dir, capsys):
    """results/science/ under results/ holds its own leaderboard: `harness leaderboard` (default `results`) keeps
    building the board it built before that study landed, says what it skipped, and naming the folder includes it."""
    root = tmp_path / "results"
    shutil.copytree(runs, root)
    study = root / "study"
    fake_run(data_dir, study / "base", "base", drop_words(1), langs=("de-en",), limit=4)
    write_not_run(study / "xbridge", "xbridge", "tiny-test", REASON)
    before, _ = make_leaderboard([root], tmp_path / "before", n_boot=20, seed=1)
    assert len(before) == 2  # the study's runs (limit 4) are a section of their own, and it has a not-run row
    make_leaderboard([study], study, n_boot=20, seed=1)  # the study's own board: study/leaderboard.md

    assert main(["leaderboard", str(root), "--output", str(tmp_path / "after"), "--resamples", "20"]) == 0
    assert f"skipped {study}: it holds its own leaderboard" in capsys.readouterr().out
    after = (tmp_path / "after" / "leaderboard.md").read_text()
    assert "xbridge" not in after and after.count("\n## ") == 1
    assert [r.label for r in make_leaderboard([root], tmp_path / "again", n_boot=20, seed=1)[0][0].rows] == \
        ["base", "better"]
    named, _ = make_leaderboard([root, study], tmp_path / "named", n_boot=20, seed=1)  # named: searched
    assert len(named) == 2 and "xbridge" in [r.label for t in named for r in t.rows]
