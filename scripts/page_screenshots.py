"""Screenshots of a leaderboard page in headless Chromium (the OS's chromium + chromium-driver, through selenium):

    python scripts/page_screenshots.py results/science
    # -> leaderboard-1400x1000.png, leaderboard-1280x800.png, leaderboard-samples-1400x1000.png

The third one opens the first method row's first translation cell (its samples next to the base model's).
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path


def driver(width: int, height: int):
    from selenium import webdriver

    browser = next(shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b))
    opts = webdriver.ChromeOptions()
    opts.binary_location = browser
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
              f"--window-size={width},{height}"):
        opts.add_argument(a)
    return webdriver.Chrome(options=opts, service=webdriver.ChromeService(executable_path=shutil.which("chromedriver")))


def shoot(folder: Path) -> list[Path]:
    page = (folder / "leaderboard.html").resolve()
    written = []
    for width, height, samples in ((1400, 1000, False), (1280, 800, False), (1400, 1000, True)):
        d = driver(width, height)
        try:
            d.get(page.as_uri())
            time.sleep(0.5)
            name = f"leaderboard-{width}x{height}.png"
            if samples:
                first = "#delta-1 tbody tr:nth-child(2) td.g-translation button.cell"
                d.find_elements("css selector", first)[0].click()
                end = time.time() + 10
                while time.time() < end and not d.find_elements("css selector", "dialog#samples article.sample"):
                    time.sleep(0.05)
                time.sleep(0.3)
                name = f"leaderboard-samples-{width}x{height}.png"
            d.save_screenshot(str(folder / name))
            written.append(folder / name)
        finally:
            d.quit()
    return written


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path, help="a folder holding leaderboard.html")
    for path in shoot(ap.parse_args().folder):
        print(f"wrote {path}")
