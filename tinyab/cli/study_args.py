"""The options ``tinyab search`` and ``tinyab ablate`` share: both run a study the same way."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING

from tinyab.cli import add_set_argument
from tinyab.config import parse_overrides
from tinyab.errors import UserError

if TYPE_CHECKING:
    from tinyab.study import RunRequest


def add_study_arguments(parser: argparse.ArgumentParser, *, noun: str) -> None:
    """Add the options of a study run; ``noun`` names what the command runs ("study", "ablation")."""
    parser.add_argument(
        "--profile",
        choices=["smoke", "full", "auto"],
        default="auto",
        help=f"{noun} scale; auto (default) takes full when a GPU is visible, else smoke",
    )
    parser.add_argument("--data", help="Tiny ImageNet zip or folder (default: $TINYAB_DATA or the download)")
    parser.add_argument(
        "--results", default="results", help=f"records go to RESULTS/<{noun}>/<run>/ (default: results)"
    )
    parser.add_argument(
        "--run", help="run folder name (default: <profile>-<date>-<time>); with --resume, the run"
    )
    parser.add_argument(
        "--resume", action="store_true", help=f"continue the newest run of this {noun} (or --run)"
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="check the file and print the plan; run nothing"
    )
    add_set_argument(
        parser,
        "override a study field (seeds=2, pruner.name=median) or a recipe field (epochs=5); repeatable",
    )
    parser.add_argument(
        "--num-samples", type=int, help="nuisance configurations per arm (overrides the study)"
    )
    parser.add_argument(
        "--max-seeds",
        type=int,
        help="sequential seeds: add seeds in batches until every comparison is decisive or N seeds",
    )
    parser.add_argument(
        "--budget", help="sequential seeds: stop adding batches after this wall time (e.g. 90m, 2h, 3600s)"
    )
    parser.add_argument(
        "--address",
        help="an existing Ray cluster (e.g. 10.0.0.5:6379); default: $RAY_ADDRESS (set for a driver "
        "started by `ray job submit`), else a local Ray",
    )
    parser.add_argument(
        "--dashboard",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="start Ray's dashboard with the local Ray (default: on, at 127.0.0.1)",
    )
    parser.add_argument("--verbose", action="store_true", help="also print Ray's own log messages")
    parser.add_argument(
        "--mlflow",
        metavar="URI",
        help="also log every trial to MLflow (e.g. file:///tmp/mlruns, http://host:5000)",
    )
    parser.add_argument(
        "--dashboard-host",
        default="127.0.0.1",
        help="address the dashboard binds to; anything but 127.0.0.1 exposes it (a warning is printed)",
    )


def run_request(args: argparse.Namespace, name: str) -> RunRequest:
    """The parsed options as the library's request."""
    from tinyab.study import RunRequest

    overrides = parse_overrides(args.overrides)
    if args.num_samples is not None:
        if args.num_samples < 1:
            raise UserError(f"--num-samples: expected a positive integer, got {args.num_samples}")
        overrides["num_samples"] = args.num_samples
    if args.max_seeds is not None:
        overrides.setdefault("sequential", {})["max_seeds"] = args.max_seeds
    return RunRequest(
        name=name,
        profile=args.profile,
        overrides=overrides,
        data=args.data,
        results=Path(args.results),
        run=args.run,
        resume=args.resume,
        dry_run=args.dry_run,
        address=args.address or os.environ.get("RAY_ADDRESS") or None,
        dashboard=args.dashboard,
        dashboard_host=args.dashboard_host,
        budget_seconds=parse_duration(args.budget) if args.budget else None,
        verbose=args.verbose,
        mlflow=args.mlflow,
    )


def parse_duration(text: str) -> float:
    """``90m``, ``2h``, ``3600s`` or ``3600`` as seconds."""
    units = {"s": 1, "m": 60, "h": 3600}
    number, unit = (text[:-1], text[-1]) if text[-1:] in units else (text, "s")
    try:
        seconds = float(number) * units[unit]
    except ValueError:
        seconds = -1.0
    if not 0 < seconds < float("inf"):
        raise UserError(f"--budget {text}: expected a positive duration such as 90m, 2h or 3600s")
    return seconds


def print_entries(kind: str) -> int:
    """``tinyab spaces`` / ``tinyab ablations``: each study with its question."""
    from tinyab.study import entries

    found = entries(kind)  # type: ignore[arg-type]
    if not found:
        folder = "search_spaces" if kind == "search" else "ablations"
        print(f"none found (looked for {folder}/*.yaml)")
    width = max((len(e.name) for e in found), default=0) + 2
    for entry in found:
        print(f"{entry.name:<{width}}{entry.question}")
    return 0
