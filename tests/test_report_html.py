"""The HTML report in a real headless Chromium (Debian's /usr/bin/chromium driven by Playwright): it opens
offline, has its title and tables, every embedded figure decodes, the console stays clean, and a
screenshot shows a real page."""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

import pytest

from helpers.records import write_factorial
from tinyab.cli import main

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


def test_html_report_renders_offline_in_chromium(tmp_path: Path) -> None:
    if not Path(CHROMIUM).is_file():
        pytest.fail("chromium not found: apt-get install -y chromium")
    from playwright.sync_api import sync_playwright

    run = write_factorial(tmp_path / "init_vs_wd" / "run1")
    out = tmp_path / "rep"
    assert main(["report", str(run), "--format", "html", "--out", str(out)]) == 0
    html = out / "report.html"
    text = html.read_text()
    assert "http://" not in text and "https://" not in text  # nothing to fetch: it opens offline

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            errors: list[str] = []
            requests: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(html.as_uri(), wait_until="load")
            assert page.title() == "tinyab report: init_vs_wd"
            headings = page.locator("h2").all_inner_texts()
            for section in ("Verdicts", "Arms", "Comparisons", "Factorial ANOVA (type II)", "Figures"):
                assert section in headings
            assert page.locator("table").count() >= 4
            assert page.locator("table.arms tbody tr").count() == 4
            assert "variance_scaling better than xavier" in page.locator("table.comparisons").inner_text()
            images = page.locator("img")
            assert images.count() == 5  # learning curves, arms, interaction, schedule, forest
            widths = page.eval_on_selector_all("img", "els => els.map(e => e.complete && e.naturalWidth)")
            assert all(w and w > 100 for w in widths), widths
            assert errors == []
            assert all(u.startswith(("file:", "data:")) for u in requests), requests
            shot = page.screenshot(full_page=True)
        finally:
            browser.close()
    assert shot[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", shot[16:24])
    assert width == 1280 and height > 2000 and len(shot) > 50_000  # a long page with figures, not a blank one
    (tmp_path / "screenshot.png").write_bytes(shot)
