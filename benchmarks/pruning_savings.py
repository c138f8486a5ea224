"""Epochs saved by Optuna's pruners in a real search on the mini data, and what they cost in accuracy.

One study (the ``smoke`` recipe for 10 epochs, learning rate and weight decay sampled over wide ranges)
runs once without pruning and once with each pruner asked for, in one Ray session, with the same seeded
random sampler so every run trains the same configurations. For each pruner: total epochs with and
without, the share saved (target >= 50%) and the best val top-1 of the completed trials with and without
(target: within 1 point). Every run keeps a weight average (``ema_epochs``), and each pruner runs once
per judged metric: the model's val top-1 and the average's. Then ``tinyab report``'s pruning audit of
the same records: each pruner replayed on the unpruned run's complete curves (trial-id order, and the
chance that the best trial is stopped wherever it comes), beside what it did in the real run. The
defaults are the rule the shipped one-cycle study follows (docs/studies.md, "Choosing a pruner"), chosen
with ``benchmarks/pruning_frontier.py`` on four other samples (``--sampler-seed`` 1-4) at this
recipe's 10 epochs: successive halving on the weight average's top-1 at epochs 2 and 8, keeping a
quarter each time.

    python benchmarks/pruning_savings.py --samples 20
    python benchmarks/pruning_savings.py --samples 20 --pruner successive_halving percentile median
    python benchmarks/pruning_savings.py --keep /tmp/savings   # then: tinyab report /tmp/savings
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time
from pathlib import Path

from common import add_data_argument

from tinyab.analysis.pruning import audit_table, describe
from tinyab.analysis.render import markdown_table
from tinyab.records.reader import load_studies
from tinyab.study.plan import search_plan
from tinyab.study.ray_runtime import ray_session
from tinyab.study.run import RunOptions, run_study
from tinyab.study.spec import SearchStudy, build_study

TARGET_SAVED, TARGET_GAP = 0.50, 1.0


def pruner_config(name: str, metric: str, args: argparse.Namespace) -> dict:
    """The study's ``pruner:`` for one of the benchmark's pruners judging ``metric`` (no startup
    trials unless asked)."""
    if name == "none":
        return {"name": "none"}
    if name == "successive_halving":
        options = {"min_resource": args.min_resource, "reduction_factor": args.reduction_factor}
    else:
        options = {"n_startup_trials": args.startup}
        if name == "percentile":
            options["percentile"] = args.percentile
    return {"name": name, "warmup_epochs": args.warmup, "metric": metric, "options": options}


def study(samples: int, epochs: int, ema_epochs: float, sampler_seed: int, pruner: dict) -> dict:
    return {
        "name": "pruning_savings",  # one name for every run: the report pools them and audits each
        "question": "How many epochs does pruning save, and at what cost?",
        "recipe": "smoke",
        "overrides": {"epochs": epochs, "ema_epochs": ema_epochs},
        "params": {
            "optim.lr": {"role": "nuisance", "type": "loguniform", "low": 0.003, "high": 3.0},
            "optim.weight_decay": {"role": "nuisance", "type": "loguniform", "low": 1.0e-5, "high": 1.0e-2},
        },
        "num_samples": samples,
        "seeds": 1,
        "sampler": {"name": "random", "seed": sampler_seed},
        "pruner": pruner,
        "resources": {"cpus": 1, "concurrency": 2},
    }


def summarise(run_dir: Path) -> tuple[int, float, str]:
    """Total epochs, best val top-1 of the completed trials, and the epochs each trial ran."""
    with (run_dir / "trials.csv").open() as f:
        rows = sorted(csv.DictReader(f), key=lambda r: r["trial_id"])
    epochs = sum(int(r["epochs_run"]) for r in rows)
    best = max(float(r["best_val_top1"]) for r in rows if r["status"] == "completed")
    marks = {"pruned": "p", "diverged": "d", "failed": "f"}
    runs = " ".join(r["epochs_run"] + marks.get(r["status"], "") for r in rows)
    return epochs, best, runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_argument(parser)
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument(
        "--pruner",
        nargs="+",
        choices=["successive_halving", "percentile", "median", "none"],
        default=["successive_halving"],
        help="none: only the unpruned run (curves for benchmarks/pruning_frontier.py)",
    )
    parser.add_argument("--sampler-seed", type=int, default=0, help="which random configurations")
    parser.add_argument(
        "--metric",
        nargs="+",
        choices=["val_top1_ema", "val_top1"],
        default=["val_top1_ema", "val_top1"],
        help="what each pruner judges: the weight average's top-1, the model's",
    )
    parser.add_argument("--ema-epochs", type=float, default=1.0, help="the weight average's time constant")
    parser.add_argument("--warmup", type=int, default=1, help="epochs never pruned (one-cycle peak: 2.5)")
    parser.add_argument("--startup", type=int, default=0, help="n_startup_trials (median, percentile)")
    parser.add_argument("--percentile", type=float, default=25.0, help="percentile: keep the top N%%")
    parser.add_argument("--min-resource", type=int, default=2, help="successive halving: first rung")
    parser.add_argument("--reduction-factor", type=int, default=4, help="successive halving: keep 1/N")
    parser.add_argument("--keep", type=Path, help="write the records here instead of a temporary folder")
    args = parser.parse_args()
    results, configs, walls = {}, {}, {}
    with tempfile.TemporaryDirectory() as tmp, ray_session(dashboard=False) as info:
        root = args.keep or Path(tmp)
        print(f"ray: {info.resources.get('CPU', 0):g} CPU; records in {root}")
        runs = [("none", "none", "")] + [
            (f"{name}-{metric}", name, metric)
            for name in args.pruner
            if name != "none"
            for metric in args.metric
        ]
        for label, name, metric in runs:
            configs[label] = pruner_config(name, metric, args)
            fields = study(args.samples, args.epochs, args.ema_epochs, args.sampler_seed, configs[label])
            spec = build_study(SearchStudy, fields, Path("pruning_savings.py"), None)
            options = RunOptions("default", "pruning_savings.py", data=args.data, out=lambda _: None)
            plan = search_plan(spec, "default", "pruning_savings.py")
            started = time.perf_counter()
            outcome = run_study(plan, root / "pruning_savings" / label, info, options)
            walls[label] = time.perf_counter() - started
            results[label] = summarise(outcome.run_dir)
        full_epochs, full_best, full_runs = results["none"]
        print(f"\n{args.samples} configurations x {args.epochs} epochs (lr, weight decay random), one arm")
        print(f"without pruning: {full_epochs} epochs, best val top-1 {full_best:.4f}, {walls['none']:.0f} s")
        print(f"  epochs by trial (p pruned, d diverged): {full_runs}")
        for label, _, _ in runs[1:]:
            epochs, best, trials = results[label]
            saved, gap = 1 - epochs / full_epochs, round(100 * (best - full_best), 6)
            met = saved >= TARGET_SAVED and abs(gap) <= TARGET_GAP
            print(f"\n{describe(configs[label])}")
            print(
                f"  epochs {full_epochs} -> {epochs}: {saved:.1%} saved (target >= {TARGET_SAVED:.0%}); "
                f"wall {walls['none']:.0f} s -> {walls[label]:.0f} s"
            )
            print(f"  best val top-1 {full_best:.4f} -> {best:.4f}: {gap:+.2f} points (target within 1)")
            print(f"  targets {'met' if met else 'NOT met'}; epochs by trial: {trials}")
        if len(runs) == 1:
            return
        (records,), _ = load_studies(root / "pruning_savings")
        table, _ = audit_table(records)
        assert table is not None
        print(f"\n{table.title} (tinyab report)\n{markdown_table(table.shown)}\n{table.note}")


if __name__ == "__main__":
    main()
