"""`harness leaderboard`: results.json + samples.jsonl files → leaderboard.md/.csv/.html and pareto.png.

collect.py finds and groups comparable runs, stats.py does the paired bootstrap, build.py turns runs into
tables (column spec and composite definitions), versus.py compares each method's composites with a reference
method's (default sft), notrun.py adds a row per not_run.json (a method deliberately not
run), stale.py marks rows trained with an older method default and control.py attaches each row's mechanism check
(both from what the application passes in), render.py and plot.py write the files, page.py the HTML page (with
page_svg, page_tables, page_cards and samples_view).
"""

from __future__ import annotations

from pathlib import Path

from harness.errors import HarnessError
from harness.io import atomic_write_text, writable_dir


def preload() -> None:
    """Import every module of this package now (what make_leaderboard and the modules it calls import lazily): a
    long-running process (a study) that rebuilds the board at its end must not mix the modules it loaded at start
    with ones edited since."""
    import importlib
    import pkgutil

    for info in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{info.name}")


def make_leaderboard(paths: list[Path], output: Path, n_boot: int = 1000, seed: int = 12345,
                     versus: str | None = None, expected: dict | None = None,
                     mechanisms: dict | None = None) -> tuple[list, list[Path]]:
    """Build every table and write the four files; returns (tables, written paths). `versus`: the reference
    method of the composite-difference table (leaderboard/versus.py); None: sft where there is an sft run;
    "none": no such table. `expected`: run folder (stale.run_key) -> stale.Expected, the method variant each run's
    recipe gives today (computed by the application); rows that recorded another one are marked stale. `mechanisms`:
    run folder -> the method's mechanism check in words (the application's); control runs are paired here
    (leaderboard/control.py)."""
    from leaderboard import collect, render
    from leaderboard.build import build
    from leaderboard.notrun import attach
    from leaderboard.page import write_page
    from leaderboard.plot import pareto_png
    from leaderboard.versus import attach_versus

    if n_boot < 10:
        raise HarnessError("--resamples: use at least 10 bootstrap resamples (1000 recommended)")
    writable_dir(output, "--output")  # before the (slow) bootstrap
    notes: list[str] = []
    files = collect.find_results(paths)
    not_run = collect.find_not_run(paths)  # a malformed one stops here, before the bootstrap
    runs = collect.load_runs(files, notes)
    if not runs:
        raise HarnessError(f"no results.json under {', '.join(map(str, paths))}; run `harness run` first")
    sections = collect.group(runs)
    methods = sorted({r.method for s in sections for r in s.rows})
    if versus not in (None, "none") and versus not in methods:
        raise HarnessError(f"--versus {versus}: no run of that method in these results (methods: {', '.join(methods)}; "
                           f"or --versus none)")
    tables = build(sections, n_boot=n_boot, seed=seed)
    attach_versus(tables, versus or "sft")
    attach(tables, not_run)
    if expected:
        from leaderboard.stale import mark_stale

        mark_stale(tables, expected)
    from leaderboard.control import attach_mechanisms

    attach_mechanisms(tables, mechanisms or {}, n_boot, seed)
    if notes:
        tables[0].notes[:0] = notes
    output.mkdir(parents=True, exist_ok=True)
    written = [output / "leaderboard.md", output / "leaderboard.csv", output / "leaderboard.html",
               output / "pareto.png"]
    atomic_write_text(written[0], render.markdown(tables, n_boot, seed))
    atomic_write_text(written[1], render.csv_text(tables))
    write_page(tables, n_boot, seed, written[2])  # and its sample files in leaderboard_samples/ (leaderboard/page.py)
    pareto_png(tables[0], written[3])
    return tables, written
