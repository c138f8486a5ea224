"""The LR range test (Smith 2017, section 3.3): raise the learning rate exponentially over a few
hundred mini-batches, record the loss, and read CLR bounds off the curve."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinyab.config import Recipe
from tinyab.data import Batch
from tinyab.errors import UserError
from tinyab.io import atomic_write, atomic_write_text
from tinyab.train.engine import Trainer, build_trainer
from tinyab.train.resolution import resolution_at


@dataclass
class LRFindResult:
    lrs: list[float]
    losses: list[float]  # smoothed (bias-corrected exponential moving average)
    base_lr: float
    max_lr: float
    plot_path: Path


def suggest_bounds(lrs: list[float], losses: list[float]) -> tuple[float, float]:
    """Smith's reading of the curve: ``max_lr`` where the loss stops falling (its minimum); ``base_lr``
    where it falls fastest against log(lr) on a further-smoothed curve, kept between max_lr / 10 and
    max_lr / 4 (the range the LR range-test literature gives). The extra smoothing and the clamp keep
    a noise dip on the flat start of the curve from being read as the start of learning."""
    best = int(np.argmin(losses))
    max_lr = lrs[best]
    if best < 2:
        return max_lr / 10, max_lr
    window = max(3, len(losses) // 20) | 1  # odd, so the moving average stays centred
    padded = np.pad(np.asarray(losses[: best + 1]), window // 2, mode="edge")
    smooth = np.convolve(padded, np.ones(window) / window, mode="valid")
    slope = np.gradient(smooth, np.log(lrs[: best + 1]))
    steepest = lrs[int(np.argmin(slope))]
    return min(max(steepest, max_lr / 10), max_lr / 4), max_lr


def endless_batches(trainer: Trainer) -> Iterator[Batch]:
    """Training batches at the first phase's resolution, epoch after epoch."""
    px = resolution_at(trainer.recipe.resolution, 0)
    augment_on = trainer.recipe.augment.start_epoch == 0
    return itertools.chain.from_iterable(trainer.batches(px, augment_on) for _ in itertools.count())


def lr_find(
    recipe: Recipe,
    *,
    data: str | Path | None,
    out_dir: Path,
    device: str | None = None,
    min_lr: float = 1e-5,
    max_lr: float = 10.0,
    steps: int = 100,
    smoothing: float = 0.9,
) -> LRFindResult:
    """Run the sweep on the recipe's model and data; write ``lr_find.csv`` and ``lr_find.png``."""
    trainer = build_trainer(recipe, data=data, device=device, progress=True)
    factor = (max_lr / min_lr) ** (1 / max(steps - 1, 1))
    lrs: list[float] = []
    losses: list[float] = []
    average = 0.0
    trainer.model.train()
    for step, batch in enumerate(itertools.islice(endless_batches(trainer), steps)):
        lr = min_lr * factor**step
        for group in trainer.optimizer.param_groups:
            group["lr"] = lr
        loss, _ = trainer.train_step(batch)
        value = loss.item()
        if not math.isfinite(value):
            break
        average = smoothing * average + (1 - smoothing) * value
        lrs.append(lr)
        losses.append(average / (1 - smoothing ** len(lrs)))
        if losses[-1] > 4 * min(losses):
            break
    if len(lrs) < 3:
        raise UserError(f"lr-find: the loss diverged at once; lower --min-lr (now {min_lr:g})")
    base, top = suggest_bounds(lrs, losses)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = "lr,loss\n" + "".join(f"{a:.6g},{b:.6g}\n" for a, b in zip(lrs, losses, strict=True))
    atomic_write_text(out_dir / "lr_find.csv", rows)
    plot_path = out_dir / "lr_find.png"
    plot_curve(lrs, losses, base, top, plot_path)
    return LRFindResult(lrs, losses, base, top, plot_path)


def plot_curve(lrs: list[float], losses: list[float], base: float, top: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(lrs, losses)
    ax.set_xscale("log")
    ax.axvline(base, color="tab:green", linestyle="--", label=f"base_lr {base:.3g}")
    ax.axvline(top, color="tab:red", linestyle="--", label=f"max_lr {top:.3g}")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss (smoothed)")
    ax.set_title("LR range test")
    ax.legend()
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=120))
    plt.close(fig)
