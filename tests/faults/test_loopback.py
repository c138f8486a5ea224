"""Loopback by default: while a local search runs, no process of its Ray session (GCS, raylet, object
manager, workers, agents, dashboard, metrics servers, the driver) listens beyond 127.0.0.1, and the
login token tinyab creates is private (0600) from the moment it exists."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tinyab.study.ray_runtime import DRIVER_PID, TEMP_PREFIX, is_loopback, session_processes

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
TINY = ["--profile", "smoke", "--set", "epochs=1", "--set", "seeds=1", "--set", "data.classes=2"]
TINY += ["--set", "data.train_per_class=32", "--set", "data.val_per_class=10"]


def _address(hex_address: str) -> tuple[str, int]:
    """An address of /proc/net/{tcp,udp}[6]: host bytes in 32-bit words of the machine's byte order."""
    host, port = hex_address.split(":")
    raw = bytes.fromhex(host)
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    family = socket.AF_INET if len(raw) == 4 else socket.AF_INET6
    return socket.inet_ntop(family, words), int(port, 16)


def _listening_inodes() -> dict[str, tuple[str, str, int]]:
    """socket inode -> (protocol, host, port) for TCP sockets in LISTEN and unconnected bound UDP ones."""
    found = {}
    for proto, state in (("tcp", "0A"), ("tcp6", "0A"), ("udp", "07"), ("udp6", "07")):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/net/{proto}").read_text().splitlines()[1:]:
                fields = line.split()
                host, port = _address(fields[1])
                if fields[3] == state and port:
                    found[fields[9]] = (proto, host, port)
    return found


def _listening(pids: set[int]) -> set[tuple[str, str, str, int]]:
    """(process name, protocol, host, port) for every listening socket the processes hold."""
    inodes = _listening_inodes()
    found = set()
    for pid in pids:
        try:
            argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
            links = [os.readlink(fd) for fd in Path(f"/proc/{pid}/fd").iterdir()]
        except OSError:
            continue  # gone meanwhile
        for link in links:
            if link.startswith("socket:[") and link[8:-1] in inodes:
                found.add((f"{argv0.split()[0].rsplit('/', 1)[-1]} ({pid})", *inodes[link[8:-1]]))
    return found


def _descendants(root: int) -> set[int]:
    parents = {}
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError, ValueError, IndexError):
            if entry.name.isdigit():
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
    found = {root}
    grew = True
    while grew:
        children = {pid for pid, ppid in parents.items() if ppid in found} - found
        found |= children
        grew = bool(children)
    return found


def _session_folder(driver: int) -> Path | None:
    for folder in Path("/tmp").glob(f"{TEMP_PREFIX}*"):
        with contextlib.suppress(OSError):
            if (folder / DRIVER_PID).read_text() == str(driver):
                return folder
    return None


def test_a_local_search_listens_on_loopback_only(mini_zip: Path, tmp_path: Path) -> None:
    token = tmp_path / "ray" / "auth_token"  # created by tinyab for this run
    env = {**os.environ, "RAY_AUTH_TOKEN_PATH": str(token)}
    for name in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "RAY_ADDRESS"):
        env.pop(name, None)
    command = [sys.executable, "-m", "tinyab", "search", "init_vs_wd", "--data", str(mini_zip)]
    command += ["--results", str(tmp_path / "results"), *TINY]
    driver = subprocess.Popen(
        command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    seen: set[tuple[str, str, str, int]] = set()
    token_modes: set[int] = set()
    folder = None
    try:
        while driver.poll() is None:  # sample every service of the session while the trials run
            folder = folder or _session_folder(driver.pid)
            pids = _descendants(driver.pid) | set(session_processes(folder) if folder else [])
            seen |= _listening(pids)
            with contextlib.suppress(OSError):
                token_modes.add(token.stat().st_mode & 0o777)
            time.sleep(1.0)
        output = driver.stdout.read() if driver.stdout else ""
    finally:
        if driver.poll() is None:
            driver.kill()
        for pid in session_processes(folder) if folder else []:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
    assert driver.returncode == 0, output
    assert "trials: 6 (0 already recorded, 6 to run)" in output and "dashboard: http://127.0.0.1:" in output
    names = {entry[0].split(" (")[0] for entry in seen}
    assert {"gcs_server", "raylet", "ray::DashboardAgent", "ray::RuntimeEnvAgent"} <= names, sorted(seen)
    assert any(name.startswith("ray::") and "Agent" not in name for name in names), sorted(seen)  # workers
    outside = sorted(entry for entry in seen if not is_loopback(entry[2]))
    assert outside == [], f"listening beyond loopback: {outside}"
    assert token_modes == {0o600}, [oct(mode) for mode in token_modes]
    assert not folder or not folder.exists()  # the session ended and removed its files
