"""The leaderboard page in a real browser: headless Chromium driven by selenium, page opened from file://.

The page is built by `make_leaderboard` from the committed small runs (results/smollm2-135m-instruct,
results/gemma3-270m) into a tmp folder; the committed science page is opened as it is. Checks: one plot point per method
variant, sorting reorders rows, hiding a column group hides its cells, opening a cell shows that cell's samples (count
and per-sample values equal to samples.jsonl), clicking a point highlights its row, no console error, the science page
loads in under 2 s. Without chromium/chromium-driver (or selenium) the tests skip, except under CI
(HARNESS_REQUIRE_BROWSER=1, set by .ci/run, which installs them): there they fail.
"""

from __future__ import annotations

import functools
import os
import shutil
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from harness.rundir.read import read_samples
from leaderboard import make_leaderboard
from leaderboard.page_svg import point_rows
from leaderboard.plot import drawn_rows

ROOT = Path(__file__).resolve().parent.parent
RUNS = [ROOT / "results" / "smollm2-135m-instruct", ROOT / "results" / "gemma3-270m"]


def _missing(why: str):
    if os.environ.get("HARNESS_REQUIRE_BROWSER") == "1":
        pytest.fail(f"HARNESS_REQUIRE_BROWSER=1 but {why} "
                    "(apt-get install chromium chromium-driver; pip install selenium)")
    pytest.skip(why)


@pytest.fixture(scope="module")
def driver():
    try:
        from selenium import webdriver
    except ImportError:
        _missing("selenium is not installed")
    browser = next((shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)),
                   None)
    drv = shutil.which("chromedriver")
    if browser is None or drv is None:
        _missing("chromium or chromium-driver (chromedriver) is not on PATH")
    opts = webdriver.ChromeOptions()
    opts.binary_location = browser
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    d = webdriver.Chrome(options=opts, service=webdriver.ChromeService(executable_path=drv))
    yield d
    d.quit()


@pytest.fixture(scope="module")
def board(tmp_path_factory):
    out = tmp_path_factory.mktemp("board")
    tables, written = make_leaderboard(RUNS, out, n_boot=100)
    return tables[0], written[2]


def _errors(d) -> list:
    return [e for e in d.get_log("browser") if e["level"] == "SEVERE"]


def _open(d, page: Path) -> None:
    d.get(page.as_uri())
    d.get_log("browser")  # start each page with an empty log


def _rows(d) -> list[str]:
    return [r.get_attribute("id") for r in d.find_elements("css selector", "#delta-1 tbody tr")]


def test_plot_has_one_point_per_method_variant_and_click_highlights_its_row(driver, board):
    table, page = board
    _open(driver, page)
    pts = driver.find_elements("css selector", "#section-1 svg.plot g.pt")
    # the plotted rows (plot.drawn_rows: with both composites; no control run; a base only as its methods' origin)
    variants = {(r.method, r.variant, r.model) for r in drawn_rows(table)}
    assert len(pts) == len(variants) == len(point_rows(table)) > 3
    sft = next(p for p in pts if p.get_attribute("data-label").startswith("sft"))
    assert "translation gain" in sft.get_attribute("aria-label")
    sft.find_element("css selector", "circle.dot").click()
    row = driver.find_element("id", sft.get_attribute("data-rows"))
    assert "hl" in row.get_attribute("class").split() and row.find_element("css selector", "th").text.startswith("sft")
    assert _errors(driver) == []


def test_sorting_reorders_rows(driver, board):
    _table, page = board
    _open(driver, page)
    before = _rows(driver)
    ths = driver.find_elements("css selector", "#delta-1 thead tr.cols th")
    col = [th.get_attribute("textContent").strip() for th in ths].index("chrF++↑")
    th = ths[col]
    th.find_element("css selector", "button").click()  # ascending
    th.find_element("css selector", "button").click()  # descending
    assert th.get_attribute("aria-sort") == "descending"
    after = _rows(driver)
    assert sorted(after) == sorted(before) and after != before
    vals = [float(v) for v in driver.execute_script(
        "var col = arguments[0]; return Array.from(document.querySelectorAll('#delta-1 tbody tr')).map(function (r) {"
        " var c = r.cells[col]; return c && r.cells.length > 3 ? c.dataset.v : undefined; })"
        ".filter(function (v) { return v !== undefined; })", col)]
    assert vals == sorted(vals, reverse=True) and len(vals) >= 6
    assert _errors(driver) == []


def test_hiding_a_column_group_hides_it(driver, board):
    _, page = board
    _open(driver, page)
    safety = driver.find_elements("css selector", "#delta-1 .g-safety")
    assert safety and all(e.is_displayed() for e in safety)
    driver.find_element("css selector", "#section-1 input[data-group='g-safety']").click()
    assert not any(e.is_displayed() for e in driver.find_elements("css selector", "#delta-1 .g-safety"))
    assert all(e.is_displayed() for e in driver.find_elements("css selector", "#delta-1 td.g-translation"))
    driver.find_element("css selector", "#section-1 input[data-group='g-safety']").click()
    assert all(e.is_displayed() for e in driver.find_elements("css selector", "#delta-1 .g-safety"))
    assert _errors(driver) == []


def _samples(table, label: str, task: str) -> dict[str, dict]:
    rr = next(r for r in table.rows if r.label == label and r.model == "smollm2-135m-instruct")
    tr = rr.tasks[task]
    return read_samples(next((tr.run_dir / task).glob("samples.jsonl*")))


def _open_cell(d, table, label: str, column: str):
    k = next(i for i, r in enumerate(table.rows) if r.label == label and r.model == "smollm2-135m-instruct")
    j = [c.label for c in table.columns].index(column)
    d.find_element("css selector", f"#delta-1 button.cell[data-r='{k}'][data-c='{j}']").click()
    end = time.time() + 10
    while time.time() < end and not d.find_elements("css selector", "dialog#samples article.sample"):
        time.sleep(0.05)
    return d.find_elements("css selector", "dialog#samples article.sample")


@pytest.mark.parametrize("column, task, subsets, path", [
    ("chrF++", "flores", None, ("scores", "chrf")),
    ("refusal (harmful)", "safety", ("advbench",), ("refusal",)),
])
def test_a_cell_opens_its_samples_next_to_the_base_models(driver, board, column, task, subsets, path):
    table, page = board
    _open(driver, page)
    arts = _open_cell(driver, table, "lora", column)
    mine, base = _samples(table, "lora", task), _samples(table, "base", task)
    ids = [i for i, r in mine.items() if subsets is None or r["subset"] in subsets]
    n = driver.find_element("css selector", "dialog#samples .count span").get_attribute("data-n")
    assert int(n) == len(ids) and len(arts) == min(25, len(ids))

    def value(rec):
        for p in path:
            rec = rec[p]
        return float(rec)

    gains = []
    for a in arts:
        i = a.get_attribute("data-id")
        assert i in ids
        assert float(a.get_attribute("data-mv")) == pytest.approx(value(mine[i]))
        assert float(a.get_attribute("data-bv")) == pytest.approx(value(base[i]))
        gains.append(value(mine[i]) - value(base[i]))
    assert gains == sorted(gains)  # worst first: the largest per-sample loss versus base opens the view
    if task == "flores":  # source, reference and both outputs are shown
        first = arts[0].text
        i = arts[0].get_attribute("data-id")
        assert mine[i]["reference"] in first and mine[i]["outputs"][0].strip()[:30] in first
        assert base[i]["outputs"][0].strip()[:30] in first
    driver.find_element("css selector", "dialog#samples button.close").click()
    assert _errors(driver) == []


def test_committed_science_page_loads_fast_without_errors(driver):
    page = ROOT / "results" / "science" / "leaderboard.html"
    _open(driver, page)
    ms = driver.execute_script("var t = performance.getEntriesByType('navigation')[0]; "
                               "return t.loadEventEnd - t.startTime;")
    assert 0 < ms < 2000
    assert len(driver.find_elements("css selector", "svg.plot g.pt")) >= 5
    assert _errors(driver) == []


def test_the_page_also_works_served_statically(driver, board):
    table, page = board
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(page.parent))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        driver.get(f"http://127.0.0.1:{server.server_address[1]}/{page.name}")
        driver.get_log("browser")
        arts = _open_cell(driver, table, "sft", "chrF++")
        assert len(arts) == 25 and _errors(driver) == []
    finally:
        server.shutdown()
