"""`harness leaderboard`: results.json + samples.jsonl files → leaderboard.md/.csv/.html and pareto.png.

collect.py finds and groups comparable runs, stats.py does the paired bootstrap, build.py turns runs into
tables (column spec and composite definitions), notrun.py adds a row per not_run.json (a method deliberately not
run), render.py and plot.py write the files.
"""

from __future__ import annotations

from pathlib import Path

from harness.errors import HarnessError
from harness.io import atomic_write_text, writable_dir


def make_leaderboard(paths: list[Path], output: Path, n_boot: int = 1000, seed: int = 12345) -> tuple[list, list[Path]]:
    """Build every table and write the four files; returns (tables, written paths)."""
    from leaderboard import collect, render
    from leaderboard.build import build
    from leaderboard.notrun import attach
    from leaderboard.plot import pareto_png

    if n_boot < 10:
        raise HarnessError("--resamples: use at least 10 bootstrap resamples (1000 recommended)")
    writable_dir(output, "--output")  # before the (slow) bootstrap
    notes: list[str] = []
    files = collect.find_results(paths)
    not_run = collect.find_not_run(paths)  # a malformed one stops here, before the bootstrap
    runs = collect.load_runs(files, notes)
    if not runs:
        raise HarnessError(f"no results.json under {', '.join(map(str, paths))}; run `harness run` first")
    tables = build(collect.group(runs), n_boot=n_boot, seed=seed)
    attach(tables, not_run)
    if notes:
        tables[0].notes[:0] = notes
    output.mkdir(parents=True, exist_ok=True)
    written = [output / "leaderboard.md", output / "leaderboard.csv", output / "leaderboard.html", output / "pareto.png"]
    atomic_write_text(written[0], render.markdown(tables, n_boot, seed))
    atomic_write_text(written[1], render.csv_text(tables))
    atomic_write_text(written[2], render.html_text(tables, n_boot, seed))
    pareto_png(tables[0], written[3])
    return tables, written
