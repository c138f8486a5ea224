"""The training engine: ``train(recipe, on_epoch) -> TrainResult``.

One function runs every training in tinyab: ``tinyab train``, each trial of a search or ablation, the
tests and the GPU benchmark. It knows nothing of Ray or Optuna; a caller sees each epoch's metrics
through ``on_epoch`` (every epoch, the diverged one included) and may answer ``"stop"`` to end the run
early. A search does not prune that way: its trials run on Ray workers, where ``on_epoch`` reports to
Ray Tune, and the driver's Tune scheduler stops a trial that its arm's pruner rejects.

Evaluation follows the recipe's ``eval_px``, ``eval_every`` and ``eval_precision`` (see
:class:`tinyab.config.Recipe`): under inference mode, channels_last, on validation images resized once
per px. An epoch not evaluated still reports its metrics, with ``None`` for :data:`EVAL_KEYS`. With
``ema_epochs`` the weight average is evaluated too (``val_top1_ema``, ``val_loss_ema``); best epoch,
checkpoints and result stay the model's.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from tinyab.config import Recipe
from tinyab.data import Batch, DatasetArrays, eval_batches, load_arrays, resolve_data_path, train_batches
from tinyab.data.batches import resize_uint8
from tinyab.errors import UserError
from tinyab.models import apply_init, build_model, count_parameters
from tinyab.train.checkpoint import save_checkpoint
from tinyab.train.optim import build_optimizer
from tinyab.train.outputs import RunWriter
from tinyab.train.resolution import resolution_at
from tinyab.train.resume import check_model, resume_point
from tinyab.train.runtime import bf16_autocast, pick_device, tune_allocator
from tinyab.train.schedules import LRSchedule

EpochCallback = Callable[[dict[str, Any]], "str | None"]
# The keys of an epoch's metrics that only an evaluated epoch has; ``None`` in the others.
EVAL_KEYS = ("val_loss", "val_top1", "val_top5", "eval_px", "val_loss_ema", "val_top1_ema")


@dataclass
class TrainResult:
    """What one training run produced; accuracies are fractions in [0, 1]."""

    status: str  # completed | stopped | diverged
    best_val_top1: float
    best_epoch: int
    final_val_top1: float
    final_train_top1: float
    epochs_run: int
    history: list[dict[str, Any]] = field(default_factory=list)
    per_class: list[dict[str, Any]] = field(default_factory=list)
    device: str = "cpu"
    seconds: float = 0.0
    num_params: int = 0

    def summary(self) -> dict[str, Any]:
        """The scalar fields, as written to ``result.json``."""
        return {k: v for k, v in self.__dict__.items() if k not in ("history", "per_class")}


@dataclass
class EvalResult:
    loss: float
    top1: float
    top5: float
    per_class: list[float]
    px: int


class Trainer:
    """The state of one run: model, optimiser, schedule, data on the device, and progress so far."""

    def __init__(self, recipe: Recipe, arrays: DatasetArrays, device: torch.device) -> None:
        self.recipe = recipe
        self.device = device
        self.arrays = arrays
        self.num_classes = len(arrays.wnids)
        torch.manual_seed(recipe.seed)
        self.model = build_model(recipe.model, self.num_classes)
        apply_init(self.model, recipe.init)
        self.model.to(device, memory_format=torch.channels_last)
        self.num_params = count_parameters(self.model)
        self.forward: nn.Module = torch.compile(self.model) if recipe.compile else self.model
        self.optimizer = build_optimizer(self.model, recipe.optim)
        self.steps_per_epoch = max(1, len(arrays.train_y) // recipe.batch_size)
        self.schedule = LRSchedule(
            self.optimizer,
            recipe.schedule,
            recipe.optim.lr,
            self.steps_per_epoch,
            self.steps_per_epoch * recipe.epochs,
        )
        self.generator = torch.Generator(device=device).manual_seed(recipe.seed)
        self.train_x, self.train_y = arrays.train_x.to(device), arrays.train_y.to(device)
        self.val_x, self.val_y = arrays.val_x.to(device), arrays.val_y.to(device)
        self.ema = self._weight_average(recipe.ema_epochs)
        self.autocast = bf16_autocast(recipe.precision, device)
        self.eval_autocast = bf16_autocast(recipe.eval_precision, device)
        self._val_resized: tuple[int, torch.Tensor] | None = None  # (px, val_x at px), one px at a time
        self.history: list[dict[str, Any]] = []
        self.best_val_top1 = -1.0
        self.best_epoch = 0
        self.best_per_class: list[float] = []

    def _weight_average(self, ema_epochs: float | None) -> AveragedModel | None:
        """The exponential moving average of weights and BatchNorm buffers, updated every step with the
        decay that gives it a time constant of ``ema_epochs`` epochs (none when null)."""
        if ema_epochs is None:
            return None
        decay = max(0.0, 1.0 - 1.0 / (self.steps_per_epoch * ema_epochs))
        return AveragedModel(self.model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)

    def _loss(self, logits: torch.Tensor, labels: torch.Tensor, mix: Any) -> torch.Tensor:
        smoothing = self.recipe.augment.label_smoothing
        loss = F.cross_entropy(logits, labels, label_smoothing=smoothing)
        if mix is not None:
            labels_b, lam = mix
            loss = lam * loss + (1 - lam) * F.cross_entropy(logits, labels_b, label_smoothing=smoothing)
        return loss

    def train_step(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """One optimiser step; returns the batch's mean loss and its number of top-1 hits."""
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
            logits = self.forward(batch.images)
            loss = self._loss(logits.float(), batch.labels, batch.mix)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        if self.ema is not None:
            self.ema.update_parameters(self.model)
        return loss.detach(), (logits.argmax(1) == batch.labels).sum()

    def batches(self, px: int, augment_on: bool) -> Iterator[Batch]:
        """One epoch of shuffled training batches at ``px``, drawn from the run's seeded generator."""
        return train_batches(
            self.train_x,
            self.train_y,
            batch_size=self.recipe.batch_size,
            px=px,
            augment=self.recipe.augment,
            augment_on=augment_on,
            generator=self.generator,
        )

    def train_epoch(self, epoch: int) -> dict[str, float]:
        """One pass over the training set at this epoch's resolution; loss and top-1 on the fly."""
        self.model.train()
        px = resolution_at(self.recipe.resolution, epoch)
        augment_on = epoch >= self.recipe.augment.start_epoch
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device, dtype=torch.long)
        seen = 0
        start = time.perf_counter()
        batches = self.batches(px, augment_on)
        lr = self.schedule.lr
        for batch in batches:
            lr = self.schedule.lr
            loss, hits = self.train_step(batch)
            self.schedule.step()
            n = batch.labels.numel()
            loss_sum += loss * n
            correct += hits
            seen += n
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        return {
            "train_loss": loss_sum.item() / max(seen, 1),
            "train_top1": correct.item() / max(seen, 1),
            "lr": lr,
            "resolution": px,
            "seconds": seconds,
            "images_per_s": seen / seconds if seconds > 0 else 0.0,
        }

    def evaluates_after(self, epoch: int) -> bool:
        """Whether 0-based ``epoch`` is followed by an evaluation: every ``eval_every``-th epoch
        (1-based) and the final one."""
        done = epoch + 1
        return done % self.recipe.eval_every == 0 or done >= self.recipe.epochs

    def eval_px(self, epoch: int) -> int:
        """The px to evaluate at after 0-based ``epoch``: ``recipe.eval_px`` when set, else the px
        of the phase just trained, and the last phase's px after the final epoch."""
        if self.recipe.eval_px is not None:
            return self.recipe.eval_px
        if epoch + 1 >= self.recipe.epochs:
            return self.recipe.resolution[-1][1]
        return resolution_at(self.recipe.resolution, epoch)

    def val_images(self, px: int) -> torch.Tensor:
        """The validation images as uint8 N×px×px×3 on the device, resized once per px (the last
        px asked for is kept: phases change px rarely)."""
        if self._val_resized is None or self._val_resized[0] != px:
            self._val_resized = None  # free the previous size first
            self._val_resized = (px, resize_uint8(self.val_x, px))
        return self._val_resized[1]

    @torch.inference_mode()
    def evaluate(self, px: int | None = None, *, average: bool = False) -> EvalResult:
        """Loss, top-1, top-5 and per-class top-1 on the validation set at ``px`` (default: the px
        of the final evaluation), under inference mode, channels_last, bf16 per ``eval_precision``;
        of the weight average instead of the model with ``average``."""
        px = self.eval_px(self.recipe.epochs - 1) if px is None else px
        module, forward = self.model, self.forward
        if average:
            if self.ema is None:
                raise ValueError("evaluate(average=True) needs a recipe with ema_epochs")
            module = forward = self.ema.module
        module.eval()
        loss_sum = torch.zeros((), device=self.device)
        top1 = torch.zeros(self.num_classes, device=self.device)
        top5 = torch.zeros((), device=self.device)
        counts = torch.bincount(self.val_y, minlength=self.num_classes).float()
        k = min(5, self.num_classes)
        images = self.val_images(px)
        for batch in eval_batches(images, self.val_y, batch_size=self.recipe.eval_batch_size):
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.eval_autocast):
                logits = forward(batch.images).float()
            loss_sum += F.cross_entropy(logits, batch.labels, reduction="sum")
            hits = logits.topk(k, dim=1).indices == batch.labels[:, None]
            top1.index_add_(0, batch.labels, hits[:, 0].float())
            top5 += hits.any(dim=1).sum()
        n = counts.sum().item()
        per_class = (top1 / counts.clamp(min=1)).tolist()
        return EvalResult(loss_sum.item() / n, top1.sum().item() / n, top5.item() / n, per_class, px)

    def state(self, epoch: int) -> dict[str, Any]:
        """Everything needed to resume after ``epoch`` (1-based) and reproduce the rest exactly."""
        return {
            "epoch": epoch,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "schedule_step": self.schedule.step_count,
            "generator": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "history": self.history,
            "best": [self.best_val_top1, self.best_epoch, self.best_per_class],
            "ema": None if self.ema is None else self.ema.state_dict(),
        }

    def restore(self, state: dict[str, Any]) -> int:
        """Load a state written by :meth:`state`; returns the number of epochs already run."""
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.set_step(state["schedule_step"])
        self.generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        self.history = list(state["history"])
        self.best_val_top1, self.best_epoch, self.best_per_class = state["best"]
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"])
        return int(state["epoch"])


def format_epoch(m: dict[str, Any], epochs: int) -> str:
    """One progress line per epoch (``val -`` for an epoch that was not evaluated)."""
    if m.get("val_top1") is None:
        val = "val -"
    else:
        val = (
            f"val{'' if m['eval_px'] == m['resolution'] else ' @' + str(m['eval_px']) + 'px'} "
            f"loss {m['val_loss']:.3f} top1 {m['val_top1']:.3f} top5 {m['val_top5']:.3f}"
        )
    return (
        f"epoch {m['epoch']:>3}/{epochs}  px {m['resolution']:>2}  lr {m['lr']:.4g}  "
        f"train loss {m['train_loss']:.3f} top1 {m['train_top1']:.3f}  |  {val}  |  "
        f"{m['seconds']:.1f}s {m['images_per_s']:.0f} img/s"
    )


def _finite(value: Any) -> bool:
    return value is not None and math.isfinite(value)


def build_trainer(
    recipe: Recipe, *, data: str | Path | None = None, device: str | None = None, progress: bool = True
) -> Trainer:
    """Load the recipe's data subset (from the uint8 cache when possible) and set up a Trainer."""
    tune_allocator()
    path = resolve_data_path(None if data is None else str(data))
    arrays = load_arrays(
        path,
        classes=recipe.data.classes,
        train_per_class=recipe.data.train_per_class,
        val_per_class=recipe.data.val_per_class,
        progress=progress,
    )
    images = len(arrays.train_y)
    if recipe.batch_size > images:  # the recipe's own bound assumes 500 per class; this dataset has fewer
        raise UserError(
            f"batch_size: {recipe.batch_size} is more than the training set's {images:,} images "
            f"(data.classes {recipe.data.classes} of {path}); expected at most {images}"
        )
    return Trainer(recipe, arrays, pick_device(device))


def train(
    recipe: Recipe,
    on_epoch: EpochCallback | None = None,
    *,
    data: str | Path | None = None,
    out_dir: str | Path | None = None,
    device: str | None = None,
    resume: bool = False,
    progress: bool = True,
) -> TrainResult:
    """Train ``recipe``; call ``on_epoch(metrics)`` after every epoch (answer ``"stop"`` to end early).

    With ``out_dir`` the run leaves its recipe, per-epoch metrics, best and last checkpoints, per-class
    accuracy and ``result.json`` there; ``resume`` continues from ``out_dir/checkpoints/last.pt``
    after :func:`tinyab.train.resume.resume_point` has checked the folder against ``recipe`` (before
    anything is written there).
    """
    point = resume_point(Path(out_dir), recipe) if resume and out_dir is not None else None
    if point is not None and point.note and progress:
        print(point.note, flush=True)
    trainer = build_trainer(recipe, data=data, device=device, progress=progress)
    dev, arrays = trainer.device, trainer.arrays
    start_epoch = 0
    if point is not None:
        check_model(point.checkpoint, point.state["model"], trainer.model)
        start_epoch = trainer.restore(point.state)
        if progress:
            print(f"resuming after epoch {start_epoch}", flush=True)
    writer = RunWriter(Path(out_dir), recipe) if out_dir is not None else None
    started = time.perf_counter()
    status = "completed"
    for epoch in range(start_epoch, recipe.epochs):
        metrics: dict[str, Any] = {"epoch": epoch + 1, **trainer.train_epoch(epoch)}
        metrics.update(dict.fromkeys(EVAL_KEYS))
        evaluation = None
        if _finite(metrics["train_loss"]) and trainer.evaluates_after(epoch):
            evaluation = trainer.evaluate(trainer.eval_px(epoch))
            metrics.update(
                val_loss=evaluation.loss,
                val_top1=evaluation.top1,
                val_top5=evaluation.top5,
                eval_px=evaluation.px,
            )
            if trainer.ema is not None:
                average = trainer.evaluate(evaluation.px, average=True)
                metrics.update(val_loss_ema=average.loss, val_top1_ema=average.top1)
        trainer.history.append(metrics)
        bad_eval = evaluation is not None and not _finite(evaluation.loss)
        diverged = not _finite(metrics["train_loss"]) or bad_eval
        improved = evaluation is not None and not diverged and evaluation.top1 > trainer.best_val_top1
        if improved:
            trainer.best_val_top1, trainer.best_epoch = evaluation.top1, epoch + 1
            trainer.best_per_class = evaluation.per_class
        if writer is not None:
            writer.epochs(trainer.history)
            state = trainer.state(epoch + 1)
            save_checkpoint(state, writer.last_checkpoint)
            if improved:
                save_checkpoint({"epoch": epoch + 1, "model": state["model"]}, writer.best_checkpoint)
        if progress:
            print(format_epoch(metrics, recipe.epochs), flush=True)
        answer = on_epoch(metrics) if on_epoch is not None else None
        if diverged:
            status = "diverged"
            break
        if answer == "stop":
            status = "stopped"
            break
    history = trainer.history
    last = history[-1] if history else {}
    evaluated = [m for m in history if m.get("val_top1") is not None]
    result = TrainResult(
        status=status,
        best_val_top1=max(trainer.best_val_top1, 0.0),
        best_epoch=trainer.best_epoch,
        final_val_top1=evaluated[-1]["val_top1"] if evaluated else 0.0,
        final_train_top1=last.get("train_top1", 0.0),
        epochs_run=len(history),
        history=history,
        per_class=[
            {"class_index": i, "wnid": w, "name": n, "accuracy": a}
            for i, (w, n, a) in enumerate(
                zip(arrays.wnids, arrays.class_names, trainer.best_per_class, strict=False)
            )
        ],
        device=str(dev),
        seconds=time.perf_counter() - started,
        num_params=trainer.num_params,
    )
    if writer is not None:
        writer.finish(status, history, result.per_class, result.summary())
    return result
