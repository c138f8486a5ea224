"""Which pruner settings save the most epochs and still keep the best trial, judging the model's top-1 or
the weight average's: every setting replayed on the complete curves of unpruned runs, in random orders.

A single run shows one order of one sample of configurations; whether a pruner keeps the best depends
on both. Each unpruned run given (any run whose recipe kept a weight average, e.g. the ``none`` run of
``benchmarks/pruning_savings.py``) is replayed with tinyab's pruning audit (Optuna's pruners, one trial
at a time, as the driver drives them) under every setting of a grid, in ``--orders`` random trial
orders. For each judged metric it prints how well it ranks the trials as they end, epoch by epoch
(Spearman's correlation with the objective, mean over samples), then the frontier: at each level of
epochs saved, the setting that most often keeps a trial within ``--within`` points of the run's best,
and how often it does.

    for seed in 1 2 3 4; do
      python benchmarks/pruning_savings.py --pruner none --sampler-seed $seed --keep /tmp/frontier/s$seed
    done
    python benchmarks/pruning_frontier.py /tmp/frontier
    python benchmarks/pruning_frontier.py /tmp/heldout --rule \
        '{name: successive_halving, warmup_epochs: 1, options: {min_resource: 2, reduction_factor: 4}}'

``--rule`` (a study's ``pruner:`` mapping) also prints that one setting on every sample.
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import numpy as np
import yaml
from scipy.stats import spearmanr

from tinyab.analysis.pruning import Curve, curves_by_arm, describe, replay
from tinyab.errors import UserError
from tinyab.records.reader import load_studies

METRICS = ("val_top1", "val_top1_ema")
LEVELS = (0.25, 0.30, 0.35, 0.40, 0.45, 0.50)


def settings(epochs: int) -> list[dict]:
    """Percentile and successive-halving pruners over warm-ups of 1..4 epochs (no startup trials)."""
    grid = []
    for warmup in range(1, 5):
        for keep in (20.0, 25.0, 33.0, 50.0):
            options = {"percentile": keep, "n_startup_trials": 0}
            grid.append({"name": "percentile", "warmup_epochs": warmup, "options": options})
        for factor, first, rate in itertools.product((2, 3, 4), (1, 2, 3, 4), (0, 1)):
            if warmup < first * factor**rate < epochs:  # the first rung falls after the warm-up
                options = {"min_resource": first, "reduction_factor": factor, "min_early_stopping_rate": rate}
                grid.append({"name": "successive_halving", "warmup_epochs": warmup, "options": options})
    return grid


def outcome(curves: list[Curve], config: dict, epochs: int, within: float, rng: np.random.Generator) -> tuple:
    """Share of epochs saved and whether a trial within ``within`` of the best finished, one order."""
    order = [curves[i] for i in rng.permutation(len(curves))]
    ran = replay(order, config, True, epochs)
    total = sum(len(c.values) for c in order)
    best = max(c.objective for c in order if np.isfinite(c.objective))
    kept = [c.objective for c, r in zip(order, ran, strict=True) if r == len(c.values)]
    return 1 - sum(ran) / total, max(kept, default=-np.inf) >= best - within - 1e-9


def rank_agreement(samples: list[list[Curve]], epoch: int) -> float:
    """Mean over samples of Spearman's correlation between the value at 0-based ``epoch`` and the
    objective, over the completed trials that reached it."""
    rhos = []
    for curves in samples:
        pairs = [
            (c.values[epoch], c.objective)
            for c in curves
            if len(c.values) > epoch and np.isfinite(c.objective)
        ]
        if len(pairs) > 2:
            rhos.append(spearmanr(*zip(*pairs, strict=True)).statistic)
    return float(np.nanmean(rhos)) if rhos else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, help="a folder holding unpruned runs (searched recursively)")
    parser.add_argument("--orders", type=int, default=16, help="random trial orders per run and setting")
    parser.add_argument("--within", type=float, default=1.0, help="points of top-1 a kept trial may lose")
    parser.add_argument("--rule", type=yaml.safe_load, action="append", default=[], help="a pruner: mapping")
    args = parser.parse_args()
    samples: dict[str, list[list[Curve]]] = {metric: [] for metric in METRICS}
    epochs = 0
    try:
        studies, _ = load_studies(args.runs)
    except UserError as err:
        raise SystemExit(f"pruning_frontier: error: {err}") from None
    for study in studies:
        unpruned = [
            run for run in study.runs if (study.spec.get("pruner") or {}).get("name", "none") == "none"
        ]
        for run in unpruned:
            for metric in METRICS:
                samples[metric] += list(curves_by_arm(study, [run], metric).values())
        epochs = max(epochs, int(study.trials["epochs_run"].max()))
    counts = {m: len(s) for m, s in samples.items()}
    if not samples["val_top1_ema"]:
        raise SystemExit(f"{args.runs}: no unpruned run with val_top1_ema curves (a recipe with ema_epochs)")
    print(f"{counts['val_top1']} samples of {len(samples['val_top1'][0])} trials x {epochs} epochs")
    print("Spearman correlation with the objective at epoch " + ", ".join(map(str, range(1, epochs + 1))))
    for metric in METRICS:
        print(
            f"  {metric}: " + ", ".join(f"{rank_agreement(samples[metric], e):+.2f}" for e in range(epochs))
        )

    def measure(metric: str, config: dict) -> list[tuple[float, float]]:
        """Mean share saved and share of orders keeping the best, per sample."""
        figures = []
        for index, curves in enumerate(samples[metric]):
            rng = np.random.default_rng(index)  # the same orders for every setting and metric
            runs = [outcome(curves, config, epochs, args.within / 100, rng) for _ in range(args.orders)]
            figures.append((float(np.mean([r[0] for r in runs])), float(np.mean([r[1] for r in runs]))))
        return figures

    for rule, metric in itertools.product(args.rule, METRICS):
        figures = measure(metric, rule)
        each = ", ".join(f"{saved:.0%}/{kept:.0%}" for saved, kept in figures)
        print(
            f"{describe(rule)} on {metric}: {np.mean([f[0] for f in figures]):.1%} saved, best kept in "
            f"{np.mean([f[1] for f in figures]):.0%} of orders (per sample, saved/kept: {each})"
        )
    rows = []
    for metric, config in itertools.product(METRICS, settings(epochs)):
        figures = measure(metric, config)
        rows.append((metric, config, np.mean([f[0] for f in figures]), np.mean([f[1] for f in figures])))
    print(f"\nbest kept within {args.within:g} point(s), over {args.orders} orders of each sample")
    print("| saved at least | " + " | ".join(METRICS) + " |\n|---|" + "---|" * len(METRICS))
    for level in LEVELS:
        cells = []
        for metric in METRICS:
            fits = [r for r in rows if r[0] == metric and r[2] >= level]
            if not fits:
                cells.append("-")
                continue
            _, config, saved, kept = max(fits, key=lambda r: (r[3], r[2]))
            cells.append(f"{kept:.0%} ({saved:.0%} saved: {describe(config)})")
        print(f"| {level:.0%} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
