"""Options shared by ``tinyab search`` and ``tinyab ablate``, so both commands read and behave alike."""

from __future__ import annotations

import argparse


def add_study_arguments(
    parser: argparse.ArgumentParser, *, noun: str, resume_help: str, set_help: str
) -> None:
    """Add --profile, --data, --results, --address, --dashboard, --resume and --set.

    ``noun`` names what the command runs ("study", "ablation") in the --results help; the --resume and
    --set help differ because the commands resume and override different things.
    """
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
        "--address", help="an existing Ray cluster (e.g. 10.0.0.5:6379); default: a local Ray"
    )
    parser.add_argument(
        "--dashboard",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="start Ray's dashboard with the local Ray (default: on, at 127.0.0.1)",
    )
    parser.add_argument("--resume", action="store_true", help=resume_help)
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help=set_help
    )


def pick_profile(requested: str, profiles: list[str]) -> tuple[str | None, str]:
    """The profile to run and a line saying why; ``auto`` takes ``full`` with a GPU, else ``smoke``."""
    if requested != "auto":
        return requested, f"profile: {requested}"
    if not profiles:
        return None, "profile: the study defines none; running it as written"
    import torch

    gpu = torch.cuda.is_available()
    chosen = "full" if gpu else "smoke"
    reason = "a GPU is visible" if gpu else "no GPU is visible"
    return chosen, f"profile: auto -> {chosen} ({reason}; choose with --profile smoke|full)"
