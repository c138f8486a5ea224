"""``tinyab search`` (run a study on Ray Tune with Optuna) and ``tinyab spaces`` (list the studies)."""

from __future__ import annotations

import argparse

from tinyab.cli.study_args import add_study_arguments, pick_profile
from tinyab.config import parse_overrides, read_yaml
from tinyab.errors import UserError


def cmd_search(args: argparse.Namespace) -> int:
    from tinyab.study.runner import run_search
    from tinyab.study.spec import load_study, locate_study

    path = locate_study(args.study)
    raw = read_yaml(path)
    profiles = list(raw.get("profiles") or {}) if isinstance(raw, dict) else []
    profile, why = pick_profile(args.profile, profiles)
    overrides = parse_overrides(args.overrides)
    if args.num_samples is not None:
        if args.num_samples < 1:
            raise UserError(f"--num-samples: expected a positive integer, got {args.num_samples}")
        overrides["num_samples"] = args.num_samples
    study = load_study(str(path), profile, overrides)
    if args.data:
        data = args.data
    else:
        from tinyab.data import ensure_dataset

        data = str(ensure_dataset(None))
    print(why)
    outcome = run_search(
        study,
        profile=profile or "default",
        source=str(path),
        results=args.results,
        data=data,
        address=args.address,
        dashboard=args.dashboard,
        dashboard_host=args.dashboard_host,
        resume=args.resume,
        run=args.run,
    )
    return 0 if outcome.complete else 1


def cmd_spaces(args: argparse.Namespace) -> int:
    from tinyab.study.spec import study_files

    files = study_files()
    if not files:
        print("no studies found (looked for search_spaces/*.yaml)")
        return 0
    width = max(len(name) for name in files) + 2
    for name, path in files.items():
        data = read_yaml(path)
        question = " ".join(str(data.get("question", "")).split()) if isinstance(data, dict) else ""
        print(f"{name:<{width}}{question}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("search", help="run a study (search_spaces/) on Ray Tune with Optuna")
    p.add_argument("study", help="a study name (see `tinyab spaces`) or a study YAML file")
    add_study_arguments(
        p,
        noun="study",
        resume_help="continue the newest run of this study (or --run)",
        set_help="override a study field (seeds=2, pruner.name=median) or a recipe field (epochs=5)",
    )
    p.add_argument("--run", help="run folder name (default: <profile>-<date>-<time>); with --resume, the run")
    p.add_argument(
        "--dashboard-host",
        default="127.0.0.1",
        help="address the dashboard binds to; anything but 127.0.0.1 exposes it (a warning is printed)",
    )
    p.add_argument("--num-samples", type=int, help="nuisance configurations per arm (overrides the study)")
    p.set_defaults(func=cmd_search)

    p = subparsers.add_parser("spaces", help="list the studies in search_spaces/ with their questions")
    p.set_defaults(func=cmd_spaces)
