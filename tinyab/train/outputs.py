"""The folder a training run leaves behind (``tinyab train --out DIR``): a one-trial study's records.

Besides ``recipe.yaml``, the checkpoints and ``result.json``, the folder holds the records files
(``study.yaml``, ``trials.csv``, ``epochs.csv``, ``per_class.csv``) so that ``tinyab report DIR`` reads
a single training run like any study.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tinyab.config import Recipe
from tinyab.io import atomic_write_text
from tinyab.records import (
    EPOCH_COLUMNS,
    PER_CLASS_COLUMNS,
    TrialRecord,
    trial_columns,
    write_json,
    write_yaml,
)
from tinyab.records.csvfiles import csv_text

TRIAL_ID = "t0000"
METRIC = "val_top1"


class RunWriter:
    """Writes the run folder: recipe and study first, epochs as they come, the trial at the end."""

    def __init__(self, out_dir: Path, recipe: Recipe) -> None:
        self.out_dir = out_dir
        self.last_checkpoint = out_dir / "checkpoints" / "last.pt"
        self.best_checkpoint = out_dir / "checkpoints" / "best.pt"
        self.seed = recipe.seed
        write_yaml(out_dir / "recipe.yaml", recipe.to_dict())
        write_yaml(
            out_dir / "study.yaml",
            {
                "name": recipe.name,
                "question": f"tinyab train {recipe.name} (seed {recipe.seed})",
                "kind": "train",
                "metric": METRIC,
                "mode": "max",
                "seeds": [recipe.seed],
                "params": {},
                "resolved_recipe": recipe.to_dict(),
            },
        )

    def _csv(self, name: str, columns: list[str], rows: list[Mapping[str, Any]]) -> None:
        rows = [{**row, "trial_id": TRIAL_ID} for row in rows]
        atomic_write_text(self.out_dir / name, csv_text(columns, rows, header=True))

    def epochs(self, history: list[dict[str, Any]]) -> None:
        self._csv("epochs.csv", EPOCH_COLUMNS, history)

    def finish(
        self,
        status: str,
        history: list[dict[str, Any]],
        per_class: list[dict[str, Any]],
        summary: Mapping[str, Any],
    ) -> None:
        """The trial's records and ``result.json`` (``summary``: the result's scalar fields)."""
        self.epochs(history)
        self._csv("per_class.csv", PER_CLASS_COLUMNS, per_class)
        record = TrialRecord.from_epochs(
            TRIAL_ID,
            "pruned" if status == "stopped" else status,  # type: ignore[arg-type]
            self.seed,
            {},
            history,
            METRIC,
            wall_seconds=round(float(summary["seconds"]), 3),
            device=str(summary["device"]),
        )
        self._csv("trials.csv", trial_columns([], METRIC), [record.to_row(METRIC)])
        write_json(self.out_dir / "result.json", summary)
