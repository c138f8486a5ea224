"""What a user watches while a study runs, in a real headless Chromium: optuna-dashboard serving the
run's Optuna studies (``tinyab dashboard``) and TensorBoard reading the per-trial event files."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from test_study_driver import curves_plan, play

from tinyab.records import RecordsWriter
from tinyab.study.driver import Driver
from tinyab.study.monitors import TensorBoardMonitor
from tinyab.study.optuna_bridge import OptunaBridge
from tinyab.study.progress import Progress

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run of the fixed-curves study (no Ray): records, optuna.db and TensorBoard event files."""
    run = tmp_path_factory.mktemp("live") / "run"
    plan = curves_plan()
    records = RecordsWriter(run, list(plan.columns), plan.metric)
    records.create(plan.record, {})
    monitor = TensorBoardMonitor(run)
    progress = Progress(len(plan.slots()), "val_top1", "max")
    driver = Driver(
        plan, [], OptunaBridge(plan, run / "optuna.db"), records, progress, print, None, [monitor]
    )
    play(driver)
    monitor.close()
    return run


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def serving(command: list[str], url: str, timeout: float = 90) -> Iterator[subprocess.Popen]:
    """Run a server until ``url`` answers; stop it afterwards."""
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                urllib.request.urlopen(url, timeout=2).read(1)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"{command[0]} did not answer at {url}: {server.stdout.read()}")
                time.sleep(0.5)
        yield server
    finally:
        server.terminate()
        server.wait(timeout=30)


def shows(url: str, texts: list[str], screenshot: Path) -> None:
    """Open ``url`` in headless Chromium and wait until every text is visible (shadow DOM included)."""
    if not Path(CHROMIUM).is_file():
        pytest.fail("chromium not found: apt-get install -y chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(url, wait_until="load")
            for text in texts:
                page.get_by_text(text).first.wait_for(timeout=60_000)
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()


def test_tinyab_dashboard_serves_the_arms_studies_on_loopback(run_dir: Path, tmp_path: Path) -> None:
    port = free_port()
    command = [sys.executable, "-m", "tinyab", "dashboard", str(run_dir), "--port", str(port)]
    with serving(command, f"http://127.0.0.1:{port}/") as server:
        arms = ["curves [0] init.scheme=variance_scaling", "curves [1] init.scheme=xavier"]
        shows(f"http://127.0.0.1:{port}/dashboard", arms, tmp_path / "dash.png")
    assert (tmp_path / "dash.png").stat().st_size > 10_000
    assert server.returncode is not None


def test_tensorboard_shows_every_trials_scalars(run_dir: Path, tmp_path: Path) -> None:
    port = free_port()
    tensorboard = Path(sys.executable).parent / "tensorboard"
    command = [str(tensorboard), "--logdir", str(run_dir), "--host", "127.0.0.1", "--port", str(port)]
    with serving(command, f"http://127.0.0.1:{port}/"):
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/data/plugin/scalars/tags", timeout=30) as r:
            tags = r.read().decode()
        charts = ["loss/validation", "schedule/learning_rate", "tensorboard/t0000"]  # charts and the runs
        shows(f"http://127.0.0.1:{port}/#scalars", charts, tmp_path / "tb.png")
    assert "tensorboard/t0000" in tags and "top1/validation" in tags and "schedule/learning_rate" in tags
