"""Fixed learning curves: a training function with the engine's signature whose val top-1 is known in
advance, and an independent reference of Optuna's median rule on those curves.

Val top-1 depends on the init scheme, the kind of the seed and the epoch. Xavier's "good" curves lie
below variance scaling's median, so a pruner that compared across arms would stop them.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable

from tinyab.train.engine import TrainResult

EPOCHS, WARMUP = 6, 2
BASE = {"variance_scaling": 0.6, "xavier": 0.3}
KINDS = ["good", "good", "bad", "late", "bad", "good", "broken"]  # by seed


def curve(scheme: str, seed: int, epoch: int) -> float:
    base, kind = BASE[scheme], KINDS[seed]
    if kind == "bad":
        return base - 0.2 + 0.01 * epoch
    if kind == "late":  # poor during the warm-up, best afterwards: warm-up must protect it
        return base - 0.25 if epoch <= WARMUP else base + 0.1 + 0.02 * epoch
    return base + 0.02 * epoch


def average_curve(scheme: str, seed: int, epoch: int) -> float:
    """The weight average's val top-1 as a pruner would wish it: ranked as the final values at every
    epoch (the late curve leads from the start)."""
    return curve(scheme, seed, EPOCHS) - 0.02 * (EPOCHS - epoch)


def epoch_metrics(scheme: str, seed: int, epoch: int) -> dict[str, float]:
    top1, average = curve(scheme, seed, epoch), average_curve(scheme, seed, epoch)
    return {
        "epoch": epoch,
        "train_loss": 1.0 - top1,
        "train_top1": top1 + 0.05,
        "val_loss": 1.0 - top1,
        "val_top1": top1,
        "val_top5": min(1.0, 2 * top1),
        "val_loss_ema": 1.0 - average,
        "val_top1_ema": average,
        "lr": 0.1,
        "resolution": 32,
        "seconds": 0.0,
        "images_per_s": 0.0,
    }


def curve_train(recipe, on_epoch, *, data=None, device=None, progress=True, **_):
    """A training function with learning curves fixed in advance (the engine's signature)."""
    if KINDS[recipe.seed] == "broken":
        raise RuntimeError(f"curve {recipe.seed} broke\nsecond line of the error")
    history = []
    for epoch in range(1, recipe.epochs + 1):
        metrics = epoch_metrics(recipe.init.scheme, recipe.seed, epoch)
        history.append(metrics)
        on_epoch(metrics)
    best = max(history, key=lambda m: m["val_top1"])
    top1 = history[-1]["val_top1"]
    per_class = [{"class_index": 0, "wnid": "n01443537", "name": "goldfish", "accuracy": best["val_top1"]}]
    return TrainResult(
        "completed", best["val_top1"], best["epoch"], top1, top1 + 0.05, EPOCHS, history, per_class, "cpu"
    )


def expected_pruning(
    scheme: str, seeds: list[int], n_startup: int, warmup: int = WARMUP, values: Callable = curve
) -> dict[int, int]:
    """Independent reference of the median rule within one arm, trials in seed order: a trial stops
    at the first epoch past the warm-up (and before the last) where its best value so far is below
    the median of the completed trials' values at that epoch (``values``: the judged curve)."""
    completed: list[int] = []
    pruned = {}
    for seed in seeds:
        if KINDS[seed] == "broken":
            continue
        for epoch in range(warmup + 1, EPOCHS):
            best = max(values(scheme, seed, e) for e in range(1, epoch + 1))
            if len(completed) >= n_startup and best < statistics.median(
                values(scheme, s, epoch) for s in completed
            ):
                pruned[seed] = epoch
                break
        else:
            completed.append(seed)
    return pruned


CURVES_STUDY = {
    "name": "curves",
    "question": "Does the median pruner stop the right trials?",
    "recipe": "smoke",
    "overrides": {"epochs": EPOCHS},
    "params": {"init.scheme": {"role": "scientific", "type": "grid", "values": list(BASE)}},
    "seeds": len(KINDS),
    "sampler": {"name": "random"},
    "pruner": {"name": "median", "warmup_epochs": WARMUP, "options": {"n_startup_trials": 2}},
    "resources": {"cpus": 1, "concurrency": 1},  # one at a time: completion order = plan order
}
