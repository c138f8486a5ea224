"""Real ``tinyab search`` drivers in a subprocess, for the fault tests: the command of a tiny search,
its records read back strictly, its Optuna trials read with plain SQL, and the processes it started."""

from __future__ import annotations

import csv
import json
import os
import shutil
import sqlite3
import sys
import tempfile
from pathlib import Path
from typing import NamedTuple

REPO = Path(__file__).resolve().parents[2]

# The smallest real search: 2 classes of 20 training and 10 validation images, 2 epochs, 2 seeds. A batch
# no larger than the 40 training images, so that every trial trains (and is not refused) on any version.
TINY = ["--set", "epochs=2", "--set", "seeds=2", "--set", "data.classes=2"]
TINY += ["--set", "data.train_per_class=20", "--set", "data.val_per_class=10", "--set", "batch_size=20"]


def search_command(study: str, data: Path, results: Path, *extra: str) -> list[str]:
    """``tinyab search STUDY --profile smoke`` on a local Ray with the TINY settings."""
    command = [sys.executable, "-m", "tinyab", "search", study, "--profile", "smoke", "--data", str(data)]
    return [*command, "--results", str(results), *TINY, *extra]


def driver_env() -> dict[str, str]:
    """The test's environment for a driver on its own local Ray (no cluster address or cluster token
    mode from the caller's environment), printing line by line."""
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_AUTH_MODE", "RAY_ADDRESS")}
    return env | {"PYTHONUNBUFFERED": "1"}


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def torn(path: Path) -> str | None:
    """Why a records CSV is not whole (None when it is): a last line without its newline, a row whose
    number of fields differs from the header's, or a row that does not parse."""
    data = path.read_bytes()
    if not data:
        return f"{path.name}: empty (no header)"
    if not data.endswith(b"\n"):
        last = data.rsplit(b"\n", 1)[-1]
        return f"{path.name}: last line unterminated: {last[:80]!r}"
    try:
        rows = list(csv.reader(data.decode().splitlines()))
    except (csv.Error, UnicodeDecodeError) as err:
        return f"{path.name}: does not parse ({err})"
    for number, row in enumerate(rows[1:], start=2):
        if len(row) != len(rows[0]):
            return f"{path.name}: line {number} has {len(row)} fields, the header {len(rows[0])}: {row}"
    return None


class OptunaTrial(NamedTuple):
    number: int  # Optuna's trial_id: unique in the database, kept when a waiting trial is asked
    trial: str | None  # tinyab's trial id (its ``tinyab_trial`` user attribute), None if not set yet
    state: str
    step: int | None  # the last epoch reported


def optuna_trials(db: Path) -> list[OptunaTrial]:
    """Every Optuna trial in a run's database, read with plain SQL.

    Read from a copy of the database (with its journal): a hot journal left by a killed driver is
    rolled back in the copy, and the run's own files stay exactly as the kill left them.
    """
    with tempfile.TemporaryDirectory() as scratch:
        copy = Path(scratch) / db.name
        for suffix in ("", "-journal", "-wal"):
            if Path(f"{db}{suffix}").is_file():
                shutil.copyfile(f"{db}{suffix}", f"{copy}{suffix}")
        con = sqlite3.connect(copy)
        try:
            rows = con.execute(
                "SELECT t.trial_id, a.value_json, t.state, (SELECT MAX(step) FROM trial_intermediate_values "
                "v WHERE v.trial_id = t.trial_id) FROM trials t LEFT JOIN trial_user_attributes a "
                "ON a.trial_id = t.trial_id AND a.key = 'tinyab_trial'"
            ).fetchall()
        finally:
            con.close()
    return [OptunaTrial(n, json.loads(tid) if tid else None, state, step) for n, tid, state, step in rows]


# Processes: every one a driver started, told apart from a later process with a reused PID by its start time


def _processes() -> dict[int, tuple[int, str, str, str]]:
    """pid -> (ppid, start time, state, command line) of every process now."""
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except (OSError, IndexError):
            continue
        table[int(entry.name)] = (int(stat[1]), stat[19], stat[0], cmd)
    return table


def descendants(pid: int) -> dict[int, tuple[str, str]]:
    """pid -> (start time, command line) of every living process descended from ``pid``."""
    table = _processes()
    found: set[int] = set()
    grew = {pid}
    while grew:
        grew = {p for p, (ppid, *_) in table.items() if ppid in grew and p not in found}
        found |= grew
    return {p: (table[p][1], table[p][3]) for p in found if table[p][2] != "Z"}


def still_running(procs: dict[int, tuple[str, str]]) -> dict[int, str]:
    """Those of ``procs`` that still run (same PID and start time, not a zombie): pid -> command line."""
    table = _processes()
    return {
        pid: cmd
        for pid, (start, cmd) in procs.items()
        if pid in table and table[pid][1] == start and table[pid][2] != "Z"
    }
