"""One driver per run folder: ``driver.lock`` holds the holder's PID, host and start time.

A second driver on the same run would record trials twice; it is refused while the holder lives. A
lock left by a driver that died (same host, PID gone) is taken over, with a note saying so.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from tinyab.errors import UserError

LOCK = "driver.lock"


def pid_alive(pid: int) -> bool:
    """Whether a process with this PID runs (on this host); a zombie, dead but not yet reaped by its
    parent, does not."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True  # no /proc (not Linux): the signal check is all there is
    return state not in ("Z", "X")


def _create(path: Path) -> bool:
    """Write the lock if nobody holds it; False when the file exists. The content is written to a
    private file first and linked into place, so the lock never exists empty (a kill mid-write)."""
    holder = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}
    staging = path.with_name(f".{path.name}.{os.getpid()}")
    staging.write_text(json.dumps(holder))
    try:
        os.link(staging, path)
    except FileExistsError:
        return False
    finally:
        staging.unlink(missing_ok=True)
    return True


def refuse_if_held(run_dir: Path) -> int | None:
    """Refuse a run folder a live driver holds (or one on another host); the PID of a dead holder
    whose lock is left, else None. Checked before Ray starts, and again when the lock is taken."""
    path = run_dir / LOCK
    if not path.exists():
        return None
    try:
        holder = json.loads(path.read_text())
        pid, host = int(holder["pid"]), str(holder["host"])
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError):
        pid, host, holder = -1, "?", {}
    if host != socket.gethostname():
        raise UserError(f"{path}: held by PID {pid} on host {host}; if that driver is gone, delete the file")
    if pid > 0 and pid_alive(pid):
        since = time.strftime("%H:%M:%S", time.localtime(holder.get("started", 0)))
        raise UserError(f"{run_dir}: held by PID {pid} on {host} since {since}; wait for it or stop it")
    return pid


@contextmanager
def run_lock(run_dir: Path, out: Callable[[str], None] = print) -> Iterator[None]:
    """Hold ``run_dir``'s lock for the duration of the block (refused while a live driver holds it)."""
    path = run_dir / LOCK
    if not _create(path):
        pid = refuse_if_held(run_dir)
        out(f"note: {path} was left by PID {pid}, which is gone; taking the run over")
        path.unlink(missing_ok=True)
        if not _create(path):
            raise UserError(f"{path}: another driver took the run at the same moment")
    try:
        yield
    finally:
        path.unlink(missing_ok=True)
