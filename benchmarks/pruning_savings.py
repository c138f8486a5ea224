"""Epochs saved by Optuna's pruner in a real search on the mini data, and what it costs in accuracy.

One study (the ``smoke`` recipe, learning rate and weight decay sampled over wide ranges) runs twice in
one Ray session, with the same seeded random sampler so both runs train the same configurations: once
without pruning, once with Optuna's median (or percentile) pruner within the arm, after a warm-up.
Reported: total epochs run and best val top-1 of each, the share of epochs saved (target >= 40%) and the
gap in best val top-1 (target within 1 point). ``--pruner percentile --percentile 25`` keeps only the
trials in the top quarter of their arm.

    python benchmarks/pruning_savings.py --samples 10 --epochs 10
    python benchmarks/pruning_savings.py --pruner percentile --percentile 25
"""

from __future__ import annotations

import argparse
import csv
import tempfile
from pathlib import Path

from common import add_data_argument

from tinyab.study.plan import search_plan
from tinyab.study.ray_runtime import ray_session
from tinyab.study.run import RunOptions, run_study
from tinyab.study.spec import SearchStudy, build_study


def pruner_config(name: str, warmup: int, percentile: float) -> dict:
    options = {"n_startup_trials": 3}
    if name == "percentile":
        options["percentile"] = percentile
    return {"name": name, "warmup_epochs": warmup, "options": options} if name != "none" else {"name": "none"}


def study(samples: int, epochs: int, pruner: dict) -> dict:
    return {
        "name": f"savings_{pruner['name']}",
        "question": "How many epochs does pruning save, and at what cost?",
        "recipe": "smoke",
        "overrides": {"epochs": epochs},
        "params": {
            "optim.lr": {"role": "nuisance", "type": "loguniform", "low": 0.003, "high": 3.0},
            "optim.weight_decay": {"role": "nuisance", "type": "loguniform", "low": 1.0e-5, "high": 1.0e-2},
        },
        "num_samples": samples,
        "seeds": 1,
        "sampler": {"name": "random", "seed": 0},
        "pruner": pruner,
        "resources": {"cpus": 1, "concurrency": 2},
    }


def summarise(run_dir: Path) -> tuple[int, float, str]:
    """Total epochs, best val top-1 of the completed trials, and the epochs each trial ran."""
    with (run_dir / "trials.csv").open() as f:
        rows = sorted(csv.DictReader(f), key=lambda r: r["trial_id"])
    epochs = sum(int(r["epochs_run"]) for r in rows)
    best = max(float(r["best_val_top1"]) for r in rows if r["status"] == "completed")
    runs = " ".join(r["epochs_run"] + ("p" if r["status"] == "pruned" else "") for r in rows)
    return epochs, best, f"epochs by trial (p = pruned): {runs}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_argument(parser)
    parser.add_argument("--samples", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--pruner", choices=["median", "percentile"], default="median")
    parser.add_argument(
        "--percentile", type=float, default=25.0, help="percentile pruner: keep trials in the top N%%"
    )
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as folder, ray_session(dashboard=False) as info:
        print(f"ray: {info.resources.get('CPU', 0):g} CPU")
        for pruner in ("none", args.pruner):
            config = pruner_config(pruner, args.warmup, args.percentile)
            spec = build_study(
                SearchStudy, study(args.samples, args.epochs, config), Path("pruning.py"), None
            )
            options = RunOptions("default", "pruning_savings.py", data=args.data, out=lambda _: None)
            plan = search_plan(spec, "default", "pruning_savings.py")
            outcome = run_study(plan, Path(folder) / pruner, info, options)
            results[pruner] = summarise(outcome.run_dir)
    (full_epochs, full_best, full_status), (epochs, best, status) = results["none"], results[args.pruner]
    kind = f"percentile pruner ({args.percentile:g})" if args.pruner == "percentile" else "median pruner"
    print(f"{args.samples} configurations x {args.epochs} epochs, {kind} after {args.warmup} epochs")
    print(f"without pruning: {full_epochs} epochs, best val top-1 {full_best:.4f}  {full_status}")
    print(f"with pruning:    {epochs} epochs, best val top-1 {best:.4f}  {status}")
    saved, gap = 1 - epochs / full_epochs, 100 * (best - full_best)
    print(f"epochs saved: {saved:.1%}; best val top-1 difference: {gap:+.2f} points")


if __name__ == "__main__":
    main()
