"""A driver killed with SIGKILL leaves its local Ray running; the next tinyab command ends it, by PID,
and removes its temp dir. The login token stays private (mode 0600)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tinyab.study.ray_runtime import DRIVER_PID, TEMP_PREFIX, reap_orphans, session_processes, token_path

pytestmark = pytest.mark.slow
DRIVER = (
    "import time\n"
    "from tinyab.study.ray_runtime import ray_session\n"
    "with ray_session():\n"
    "    print('UP', flush=True)\n"
    "    time.sleep(600)\n"
)


def test_the_next_command_ends_what_a_killed_driver_left(tmp_path: Path) -> None:
    driver = subprocess.Popen([sys.executable, "-c", DRIVER], stdout=subprocess.PIPE, text=True)
    assert driver.stdout is not None and driver.stdout.readline().strip() == "UP"
    (folder,) = [
        d for d in Path("/tmp").glob(f"{TEMP_PREFIX}*") if (d / DRIVER_PID).read_text() == str(driver.pid)
    ]
    assert token_path().stat().st_mode & 0o777 == 0o600  # the login token is private
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    time.sleep(2)
    left = session_processes(folder)
    assert left, "Ray outlived its driver (what this test is about)"
    notes = reap_orphans()
    assert any(f"PID {driver.pid}" in note for note in notes)
    deadline = time.monotonic() + 20
    while session_processes(folder) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert session_processes(folder) == [] and not folder.exists()
