"""``tinyab search`` (run a study on Ray Tune with Optuna) and ``tinyab spaces`` (list the studies)."""

from __future__ import annotations

import argparse

from tinyab.cli import example
from tinyab.cli.study_args import add_study_arguments, print_entries, run_request


def cmd_search(args: argparse.Namespace) -> int:
    from tinyab.study import search

    return 0 if search(run_request(args, args.study)) else 1


def cmd_spaces(args: argparse.Namespace) -> int:
    return print_entries("search")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "search",
        help="run a study (search_spaces/) on Ray Tune with Optuna",
        **example("tinyab search init_vs_wd --profile smoke --data ~/tiny-imagenet-200.zip --set seeds=5"),
    )
    p.add_argument("study", help="a study name (see `tinyab spaces`) or a study YAML file")
    add_study_arguments(p, noun="study")
    p.set_defaults(func=cmd_search)

    p = subparsers.add_parser(
        "spaces", help="list the studies in search_spaces/ with their questions", **example("tinyab spaces")
    )
    p.set_defaults(func=cmd_spaces)
