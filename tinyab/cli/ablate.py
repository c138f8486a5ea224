"""``tinyab ablate`` (run an ablation study) and ``tinyab ablations`` (list them)."""

from __future__ import annotations

import argparse

from tinyab.cli import example
from tinyab.cli.study_args import add_study_arguments, print_entries, run_request


def cmd_ablate(args: argparse.Namespace) -> int:
    from tinyab.study import ablate

    return 0 if ablate(run_request(args, args.ablation)) else 1


def cmd_ablations(args: argparse.Namespace) -> int:
    return print_entries("ablation")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "ablate",
        help="run an ablation (ablations/): tune each arm alike, re-run on shared seeds",
        **example("tinyab ablate seed_study --profile smoke --dry-run"),
    )
    p.add_argument("ablation", help="an ablation name (see `tinyab ablations`) or an ablation YAML file")
    add_study_arguments(p, noun="ablation")
    p.set_defaults(func=cmd_ablate)

    p = subparsers.add_parser(
        "ablations",
        help="list the ablations in ablations/ with their questions",
        **example("tinyab ablations"),
    )
    p.set_defaults(func=cmd_ablations)
