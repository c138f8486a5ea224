"""``tinyab ablate`` (run an ablation study) and ``tinyab ablations`` (list them)."""

from __future__ import annotations

import argparse
from pathlib import Path

from tinyab.cli.study_args import add_study_arguments, pick_profile
from tinyab.config import parse_overrides, read_yaml


def cmd_ablate(args: argparse.Namespace) -> int:
    from tinyab.study.ablation import find_ablation, load_ablation, read_ablation_file
    from tinyab.study.ablation_plan import make_plan
    from tinyab.study.ablation_run import find_ablation_run, new_ablation_run, run_ablation

    path = find_ablation(args.ablation)
    profile, why = pick_profile(args.profile, list(read_ablation_file(path).profiles))
    assert profile is not None  # the schema requires at least one profile
    ablation = load_ablation(str(path), profile, parse_overrides(args.overrides))
    results = Path(args.results)
    run_dir = find_ablation_run(results, ablation) if args.resume else new_ablation_run(results, ablation)
    if args.data or not args.dry_run:
        from tinyab.data import ensure_dataset

        data: Path | None = ensure_dataset(args.data)
    else:
        data = None
    print(why)
    for line in make_plan(ablation, data, results / ablation.name, exclude=run_dir).lines():
        print(line)
    print(f"  results: {run_dir}" + (" (resuming)" if args.resume else ""), flush=True)
    if args.dry_run:
        return 0
    outcome = run_ablation(
        ablation,
        run_dir=run_dir,
        data=data,
        address=args.address,
        dashboard=args.dashboard,
        resume=args.resume,
    )
    return 0 if outcome.complete else 1


def cmd_ablations(args: argparse.Namespace) -> int:
    from tinyab.study.ablation import ablation_names, find_ablation

    names = ablation_names()
    if not names:
        print("no ablations found (looked for ablations/*.yaml)")
    width = max((len(n) for n in names), default=0) + 2
    for name in names:
        data = read_yaml(find_ablation(name))
        question = " ".join(str(data.get("question", "")).split()) if isinstance(data, dict) else ""
        print(f"{name:<{width}}{question}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "ablate", help="run an ablation (ablations/): tune each arm alike, re-run on shared seeds"
    )
    p.add_argument("ablation", help="an ablation name (see `tinyab ablations`) or an ablation YAML file")
    add_study_arguments(
        p,
        noun="ablation",
        resume_help="continue the newest run of this ablation and profile",
        set_help="override a recipe field in every arm, e.g. --set epochs=2 (repeatable)",
    )
    p.add_argument("--dry-run", action="store_true", help="check the file and print the plan; run nothing")
    p.set_defaults(func=cmd_ablate)

    p = subparsers.add_parser("ablations", help="list the ablations in ablations/ with their questions")
    p.set_defaults(func=cmd_ablations)
