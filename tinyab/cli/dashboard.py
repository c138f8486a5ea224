"""``tinyab dashboard RUN_DIR``: a run's Optuna studies in optuna-dashboard, on 127.0.0.1."""

from __future__ import annotations

import argparse
from pathlib import Path

from tinyab.cli import example


def cmd_dashboard(args: argparse.Namespace) -> int:
    from tinyab.study.dashboard import serve

    serve(Path(args.run), host=args.host, port=args.port)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "dashboard",
        help="serve a run's Optuna studies with optuna-dashboard (pip install 'tinyab[dashboard]')",
        **example("tinyab dashboard results/init_vs_wd/smoke-20261128-152708"),
    )
    p.add_argument("run", help="a run folder (results/<study>/<run>, or an ablation's tune/ or rerun/)")
    p.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)"
    )
    p.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    p.set_defaults(func=cmd_dashboard)
