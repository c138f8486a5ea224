"""The records contract: the files a run folder holds, their columns, and the typed ``trials.csv`` row.

A run folder (``results/<study>/<run>/`` or a ``tinyab train --out`` folder) holds ``study.yaml``,
``trials.csv`` (one :class:`TrialRecord` per finished trial), ``epochs.csv`` (one row per trial ×
epoch), ``per_class.csv`` and ``environment.json``. Everything that writes or reads them uses the names
defined here; docs/architecture.md describes the files.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Status = Literal["completed", "pruned", "failed", "diverged"]
STATUSES: tuple[Status, ...] = ("completed", "pruned", "failed", "diverged")
# The metrics the engine reports for every epoch (accuracies as fractions).
EPOCH_METRICS = (
    "train_loss", "train_top1", "val_loss", "val_top1", "val_top5", "eval_px",
    "val_loss_ema", "val_top1_ema", "lr", "resolution", "seconds", "images_per_s",
)  # fmt: skip
# Metrics a study may optimise, and the direction that is better for each.
OBJECTIVE_MODES = {
    "train_loss": "min",
    "val_loss": "min",
    "train_top1": "max",
    "val_top1": "max",
    "val_top5": "max",
}
# The weight average's metrics (recipes with ema_epochs), and every metric a pruner may judge.
AVERAGE_MODES = {"val_loss_ema": "min", "val_top1_ema": "max"}
PRUNING_MODES = {**OBJECTIVE_MODES, **AVERAGE_MODES}
EPOCH_COLUMNS = ["trial_id", "epoch", *EPOCH_METRICS]
PER_CLASS_COLUMNS = ["trial_id", "class_index", "wnid", "name", "accuracy"]
RESULT_COLUMNS = [
    "best_val_top1", "final_val_top1", "final_train_top1", "best_epoch",
    "epochs_run", "wall_seconds", "device", "node", "error", "attempts",
]  # fmt: skip
RECORD_FILES = ("trials.csv", "epochs.csv", "per_class.csv")


def objective_column(metric: str) -> str:
    """The ``trials.csv`` column holding a trial's objective: its best epoch value of ``metric``."""
    return f"best_{metric}"


def trial_columns(param_columns: Iterable[str], metric: str = "val_top1") -> list[str]:
    """``trials.csv`` columns: id, status, seed, one per varied parameter, results, then the objective
    when it is not already a result column (e.g. ``best_val_loss``)."""
    columns = ["trial_id", "status", "seed", *param_columns, *RESULT_COLUMNS]
    return columns if objective_column(metric) in columns else [*columns, objective_column(metric)]


def _finite(value: Any) -> bool:
    return value not in (None, "") and math.isfinite(float(value))


@dataclass
class TrialRecord:
    """One ``trials.csv`` row: a finished trial, summarised from its epoch stream."""

    trial_id: str
    status: Status
    seed: int
    values: dict[str, Any] = field(default_factory=dict)  # the varied parameters, by column
    objective: float | None = None
    best_val_top1: float | None = None
    final_val_top1: float | None = None
    final_train_top1: float | None = None
    best_epoch: int | None = None
    epochs_run: int = 0
    wall_seconds: float | None = None
    device: str = ""
    node: str = ""
    error: str | None = None
    attempts: int = 1  # 2 when it failed once and a fresh worker ran it again

    @classmethod
    def from_epochs(
        cls,
        trial_id: str,
        status: Status,
        seed: int,
        values: Mapping[str, Any],
        epochs: list[Mapping[str, Any]],
        metric: str,
        **rest: Any,
    ) -> TrialRecord:
        """The record of a trial from its epochs: the best epoch is the first with the highest
        validation top-1 among healthy epochs (finite training loss, and a finite validation loss
        where the epoch was evaluated: the engine's best checkpoint); the objective is the best value
        of ``metric`` among the same epochs; the final values are the last evaluated epoch's."""

        def healthy(e: Mapping[str, Any]) -> bool:
            evaluated = e.get("val_loss") is not None
            return _finite(e.get("train_loss")) and (not evaluated or _finite(e.get("val_loss")))

        fine = [e for e in epochs if healthy(e)]
        scored = [e for e in fine if _finite(e.get("val_top1"))]
        best = max(scored, key=lambda e: float(e["val_top1"]), default=None)
        wanted = [float(e[metric]) for e in fine if _finite(e.get(metric))]
        pick = max if OBJECTIVE_MODES[metric] == "max" else min
        evaluated = [e for e in epochs if e.get("val_top1") is not None]
        last = epochs[-1] if epochs else {}
        last_evaluated = evaluated[-1] if evaluated else {}
        return cls(
            trial_id=trial_id,
            status=status,
            seed=seed,
            values=dict(values),
            objective=pick(wanted) if wanted else None,
            best_val_top1=float(best["val_top1"]) if best else None,
            final_val_top1=last_evaluated.get("val_top1"),
            final_train_top1=last.get("train_top1"),
            best_epoch=int(best["epoch"]) if best else None,
            epochs_run=len(epochs),
            **rest,
        )

    def to_row(self, metric: str) -> dict[str, Any]:
        """The ``trials.csv`` row (columns as :func:`trial_columns`)."""
        return {
            "trial_id": self.trial_id,
            "status": self.status,
            "seed": self.seed,
            **self.values,
            **{name: getattr(self, name) for name in RESULT_COLUMNS},
            objective_column(metric): self.objective,
        }

    @classmethod
    def from_row(cls, row: Mapping[str, str], param_columns: Iterable[str], metric: str) -> TrialRecord:
        """A row as read back by ``csv.DictReader``: numbers as numbers, empty cells as None."""

        def number(key: str) -> float | None:
            return float(row[key]) if row.get(key) not in (None, "") else None

        best_epoch = number("best_epoch")
        return cls(
            trial_id=row["trial_id"],
            status=row["status"],  # type: ignore[arg-type]
            seed=int(row["seed"]),
            values={key: row[key] for key in param_columns},
            objective=number(objective_column(metric)),
            best_val_top1=number("best_val_top1"),
            final_val_top1=number("final_val_top1"),
            final_train_top1=number("final_train_top1"),
            best_epoch=int(best_epoch) if best_epoch is not None else None,
            epochs_run=int(number("epochs_run") or 0),
            wall_seconds=number("wall_seconds"),
            device=row.get("device", ""),
            node=row.get("node", ""),
            error=row.get("error") or None,
            attempts=int(row.get("attempts") or 1),
        )
