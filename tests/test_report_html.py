"""The HTML report in a real headless Chromium (Debian's /usr/bin/chromium driven by Playwright): it opens
offline, has its title and tables, every embedded figure decodes, the console stays clean, nothing is
wider than a 1400-px screen (the verdict columns in view), and a screenshot shows a real page."""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

import pytest

from helpers.records import INIT, WD, write_factorial
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
VIEWPORT = {"width": 1400, "height": 900}
KEY_COLUMNS = ("verdict", "delta", "ci_low", "ci_high")
# every element's box, and the key columns' headers of the comparisons table, inside the viewport
LAYOUT = """() => {
  const out = [...document.querySelectorAll('body *')].filter(e => {
    const r = e.getBoundingClientRect();
    return r.width > 0 && (r.left < 0 || r.right > window.innerWidth);
  }).map(e => `${e.tagName}.${e.className}: ${Math.round(e.getBoundingClientRect().right)}`);
  const headers = [...document.querySelectorAll('table.comparisons th')].map(th => {
    const r = th.getBoundingClientRect();
    return [th.innerText.replace(/\\s/g, ''), r.width > 0 && r.left >= 0 && r.right <= window.innerWidth];
  });
  return {out, headers, scroll: document.documentElement.scrollWidth};
}"""


def _fits(page) -> dict[str, bool]:
    """Assert that nothing sticks out of the viewport; the comparisons table's headers and visibility."""
    layout = page.evaluate(LAYOUT)
    assert layout["out"] == [] and layout["scroll"] <= VIEWPORT["width"], layout
    return dict(layout["headers"])


def test_html_report_renders_offline_in_chromium(tmp_path: Path) -> None:
    if not Path(CHROMIUM).is_file():
        pytest.fail("chromium not found: apt-get install -y chromium")
    from playwright.sync_api import sync_playwright

    run = write_factorial(tmp_path / "init_vs_wd" / "run1")
    out = tmp_path / "rep"
    assert main(["report", str(run), "--format", "html", "--out", str(out)]) == 0
    html = out / "report.html"
    # every arm against one: arm labels and verdicts as long as they get with two factors
    wide = tmp_path / "baseline"
    args = ["report", str(run), "--baseline", f"{INIT}=xavier", f"{WD}=5e-5", "--no-figures"]
    assert main([*args, "--format", "html", "--out", str(wide)]) == 0
    text = html.read_text()
    assert "http://" not in text and "https://" not in text  # nothing to fetch: it opens offline

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = browser.new_page(viewport=VIEWPORT)
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
            headers = _fits(page)
            assert all(headers[c] for c in KEY_COLUMNS), headers
            assert list(headers)[:7] == ["family", "a", "b", *KEY_COLUMNS]  # the verdict columns first
            shot = page.screenshot(full_page=True)
            page.goto((wide / "report.html").as_uri(), wait_until="load")
            assert (
                "better than scheme=xavier, weight_decay=5e-05"
                in page.locator("table.comparisons").inner_text()
            )
            assert all(_fits(page)[c] for c in KEY_COLUMNS)
            assert page.locator("table.comparisons-details").count() == 1  # tests and effect sizes apart
            (tmp_path / "screenshot-baseline.png").write_bytes(page.screenshot(full_page=True))
        finally:
            browser.close()
    assert shot[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", shot[16:24])
    assert (
        width == VIEWPORT["width"] and height > 2000 and len(shot) > 50_000
    )  # a long page with figures, not a blank one
    (tmp_path / "screenshot.png").write_bytes(shot)
