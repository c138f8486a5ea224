"""The folder a training run leaves behind (``tinyab train --out DIR``)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from tinyab.config import Recipe
from tinyab.io import atomic_write_text

if TYPE_CHECKING:
    from tinyab.train.engine import TrainResult

EPOCH_COLUMNS = [
    "epoch", "train_loss", "train_top1", "val_loss", "val_top1", "val_top5",
    "lr", "resolution", "seconds", "images_per_s",
]  # fmt: skip


def csv_text(rows: list[dict[str, Any]], columns: list[str]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


class RunWriter:
    """Writes ``recipe.yaml``, ``epochs.csv``, checkpoints, ``per_class.csv`` and ``result.json``."""

    def __init__(self, out_dir: Path, recipe: Recipe) -> None:
        self.out_dir = out_dir
        self.last_checkpoint = out_dir / "checkpoints" / "last.pt"
        self.best_checkpoint = out_dir / "checkpoints" / "best.pt"
        atomic_write_text(out_dir / "recipe.yaml", yaml.safe_dump(recipe.to_dict(), sort_keys=False))

    def epochs(self, history: list[dict[str, Any]]) -> None:
        atomic_write_text(self.out_dir / "epochs.csv", csv_text(history, EPOCH_COLUMNS))

    def finish(self, result: TrainResult) -> None:
        self.epochs(result.history)
        per_class_columns = ["class_index", "wnid", "name", "accuracy"]
        atomic_write_text(self.out_dir / "per_class.csv", csv_text(result.per_class, per_class_columns))
        atomic_write_text(self.out_dir / "result.json", json.dumps(result.summary(), indent=2) + "\n")
