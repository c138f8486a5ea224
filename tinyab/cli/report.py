"""`tinyab report PATH`: statistics, tables and figures from a study's records (works without Ray)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tinyab.cli import example
from tinyab.errors import UserError
from tinyab.io import check_output_dir

FORMATS = ("md", "csv", "latex", "html")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "report",
        help="per-arm CIs, paired tests, effect sizes, Holm, ANOVA and figures from study records",
        description="Compare the arms of a study from its records (one run, a study, or a folder of many).",
        **example("tinyab report results/init_vs_wd --baseline init.scheme=xavier --format html"),
    )
    p.add_argument("path", type=Path, help="a run folder, a study folder or a folder of many")
    p.add_argument(
        "--metric", default=None, help="trials.csv column to compare (default: the study's metric)"
    )
    p.add_argument(
        "--by",
        nargs="+",
        metavar="KEY",
        help="factors that define the arms (default: scientific and grid keys)",
    )
    p.add_argument("--baseline", nargs="+", metavar="KEY=VALUE", help="compare every arm with this one")
    p.add_argument(
        "--alpha", type=float, default=None, help="family-wise error rate (default: the study's, 0.05)"
    )
    p.add_argument(
        "--margin",
        type=float,
        default=None,
        help="smallest difference that matters, in the metric's units (default: the study's margin)",
    )
    p.add_argument("--format", choices=FORMATS, default="md", help="what to print (default md)")
    p.add_argument("--out", type=Path, default=None, help="output folder (default <run>/report)")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap and of sampled plots")
    p.add_argument("--no-figures", action="store_true", help="tables only (faster)")
    p.set_defaults(func=cmd_report)


def parse_baseline(items: list[str] | None) -> dict[str, str] | None:
    """['init.scheme=xavier'] -> {'init.scheme': 'xavier'}."""
    if not items:
        return None
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise UserError(f"--baseline {item}: expected KEY=VALUE, e.g. init.scheme=xavier")
        out[key] = value
    return out


def cmd_report(args: argparse.Namespace) -> int:
    from tinyab.analysis import render
    from tinyab.analysis.report import Options, report

    if args.alpha is not None and not 0 < args.alpha < 1:
        raise UserError(f"--alpha {args.alpha}: expected a number between 0 and 1")
    if args.margin is not None and not 0 < args.margin < float("inf"):
        raise UserError(f"--margin {args.margin}: expected a positive number")
    if args.out is not None:
        check_output_dir(args.out, "--out")
    options = Options(
        metric=args.metric,
        by=args.by,
        baseline=parse_baseline(args.baseline),
        alpha=args.alpha,
        margin=args.margin,
        seed=args.seed,
        figures=not args.no_figures,
    )
    reports, skipped = report(args.path, options, args.out)
    for line in skipped + [w for r in reports for w in r.warnings]:
        print(f"tinyab: warning: {line}", file=sys.stderr)
    for rep in reports:
        if args.format == "md":
            print(render.to_markdown(rep))
        elif args.format == "csv":
            print(render.to_csv_text(rep))
        elif args.format == "latex":
            print(render.to_latex(rep))
        else:
            print(rep.out_dir / "report.html")
    print(f"tinyab: report written to {', '.join(str(r.out_dir) for r in reports)}", file=sys.stderr)
    return 0
