"""A real Ray cluster on this machine, started with ``ray start`` and stopped by killing exactly the
processes it started (never ``ray stop``, which would stop every Ray on the machine)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

RAY = Path(sys.executable).parent / "ray"
TOKEN_ENV = {"RAY_AUTH_MODE": "token"}  # `ray start` clusters require the token in Ray 2.60


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def process_tree(marks: list[str]) -> set[int]:
    """PIDs whose command line contains a mark, with all their descendants."""
    table = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            table[int(entry.name)] = (ppid, cmd)
    found = {pid for pid, (_, cmd) in table.items() if any(m in cmd for m in marks)} - {os.getpid()}
    grew = True
    while grew:
        children = {pid for pid, (ppid, _) in table.items() if ppid in found} - found
        found |= children
        grew = bool(children)
    return found


def _agent_port() -> list[str]:
    """Each node's dashboard agent on a port of its own (Ray's fixed default, 52365, would let only
    one node of this machine have an agent, and the state API needs every node's to read its logs)."""
    return [f"--dashboard-agent-listen-port={free_port()}"]


class RayCluster(NamedTuple):
    address: str  # the GCS address, for --address and ray.init
    api: str  # the dashboard's URL, for `ray job submit` and the state API


@contextlib.contextmanager
def ray_cluster(workers: int = 1) -> Iterator[RayCluster]:
    """A head node with its dashboard and job server on 127.0.0.1, and ``workers`` more nodes; 1 CPU
    each."""
    temp = tempfile.mkdtemp(prefix="tinyab-t-", dir="/tmp")
    port, dashboard_port = free_port(), free_port()
    env = {**os.environ, **TOKEN_ENV}
    common = ["--num-cpus=1", "--disable-usage-stats"]
    head = [str(RAY), "start", "--head", f"--port={port}", f"--temp-dir={temp}"]
    head += [f"--ray-client-server-port={free_port()}", *common, *_agent_port()]
    head += ["--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard_port}"]
    address = f"127.0.0.1:{port}"
    try:
        subprocess.run(head, env=env, check=True, capture_output=True, timeout=180)
        for _ in range(workers):
            node = [str(RAY), "start", f"--address={address}", *common, *_agent_port()]
            subprocess.run(node, env=env, check=True, capture_output=True, timeout=180)
        yield RayCluster(address, f"http://127.0.0.1:{dashboard_port}")
    finally:
        for pid in process_tree([temp, f":{port} ", f":{port}\n", f"={address}"]):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        subprocess.run(["rm", "-rf", temp], check=False)
