"""A training function with the engine's signature that fails on purpose, once per marked seed: the
first attempt of seed 1 kills its own worker process mid-trial (SIGKILL after epoch 2) and the first
attempt of seed 2 raises; every later attempt trains normally. Markers live in $TINYAB_FAULT_DIR."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from helpers.curves import epoch_metrics
from tinyab.train.engine import TrainResult


def faulty_train(recipe, on_epoch, *, data=None, device=None, progress=True, **_):
    marker = Path(os.environ["TINYAB_FAULT_DIR"]) / f"{recipe.init.scheme}-{recipe.seed}"
    first = not marker.exists()
    marker.touch()
    history = []
    for epoch in range(1, recipe.epochs + 1):
        metrics = epoch_metrics(recipe.init.scheme, recipe.seed % 2, epoch)
        history.append(metrics)
        on_epoch(metrics)
        if first and recipe.seed == 1 and epoch == 2:
            os.kill(os.getpid(), signal.SIGKILL)  # the worker dies mid-trial
        if first and recipe.seed == 2 and epoch == 2:
            raise RuntimeError("CUDA out of memory (simulated)")
    best = max(history, key=lambda m: m["val_top1"])
    top1 = history[-1]["val_top1"]
    return TrainResult(
        "completed", best["val_top1"], best["epoch"], top1, top1, len(history), history, [], "cpu"
    )
