"""Serve a run's Optuna studies with optuna-dashboard on 127.0.0.1 (``tinyab dashboard RUN_DIR``).

Each arm is its own Optuna study, named after its values (``init_vs_wd [0] init.scheme=xavier, ...``),
with the metric's name and, on every trial, the arm's values, tinyab's trial id and seed as user
attributes. optuna-dashboard is an optional extra (``pip install 'tinyab[dashboard]'``).
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

from tinyab.errors import UserError

Printer = Callable[[str], None]


def optuna_storages(path: Path) -> list[Path]:
    """The ``optuna.db`` files of a run folder (an ablation has one per phase)."""
    if not path.is_dir():
        raise UserError(f"{path}: no such run folder")
    found = sorted(path.glob("optuna.db")) or sorted(path.glob("*/optuna.db"))
    if not found:
        raise UserError(f"{path}: no optuna.db here (expected a run folder of tinyab search or ablate)")
    return found


def serve(path: Path, host: str = "127.0.0.1", port: int = 8080, out: Printer = print) -> None:
    """Serve the run's Optuna storage until interrupted; prints the URL first."""
    try:
        from optuna_dashboard import run_server
    except ImportError:
        raise UserError("optuna-dashboard is not installed: pip install 'tinyab[dashboard]'") from None
    db = optuna_storages(path)[0]
    with socket.socket() as probe:
        if probe.connect_ex((host, port)) == 0:
            raise UserError(f"--port {port}: already in use on {host}; choose another with --port")
    if len(optuna_storages(path)) > 1:
        out(f"serving {db.parent.name}/optuna.db (other phases: pass their folder)")
    out(f"optuna-dashboard: http://{host}:{port}/ (Ctrl-C to stop)")
    run_server(f"sqlite:///{db.resolve()}", host=host, port=port)
