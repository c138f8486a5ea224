"""A study's records (docs/architecture.md, "Study records"), written by the driver as trials finish.

Each finished trial appends its epoch rows and per-class rows first and its ``trials.csv`` row last,
each as one flushed write, so a killed driver leaves valid CSV files; a trial counts as done only
once its ``trials.csv`` row exists. Reopening a run repairs what a kill can leave behind: a torn last
line, and epoch or per-class rows of a trial that has no ``trials.csv`` row yet.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

import yaml

from tinyab.errors import UserError
from tinyab.io import atomic_write_text

RESULT_COLUMNS = [
    "best_val_top1",
    "final_val_top1",
    "final_train_top1",
    "best_epoch",
    "epochs_run",
    "wall_seconds",
    "device",
    "node",
    "error",
]
EPOCH_COLUMNS = [
    "trial_id",
    "epoch",
    "train_loss",
    "train_top1",
    "val_loss",
    "val_top1",
    "val_top5",
    "lr",
    "resolution",
    "seconds",
    "images_per_s",
]
PER_CLASS_COLUMNS = ["trial_id", "class_index", "wnid", "name", "accuracy"]
STATUSES = ("completed", "pruned", "failed", "diverged")


def trial_columns(param_keys: Iterable[str], extra: Iterable[str] = ()) -> list[str]:
    """``trials.csv`` columns: id, status, seed, one per varied parameter, results (``extra`` after id)."""
    return ["trial_id", *extra, "status", "seed", *param_keys, *RESULT_COLUMNS]


def _cell(value: Any) -> Any:
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value)
    return "" if value is None else value


def _csv_text(columns: list[str], rows: Iterable[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for row in rows:
        writer.writerow([_cell(row.get(c)) for c in columns])
    return out.getvalue()


def _read_rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


class RecordsWriter:
    """Appends finished trials to the run folder; one instance per driver session."""

    def __init__(self, run_dir: Path, trial_cols: list[str]) -> None:
        self.run_dir = run_dir
        self.columns = {
            "trials.csv": trial_cols,
            "epochs.csv": EPOCH_COLUMNS,
            "per_class.csv": PER_CLASS_COLUMNS,
        }
        self._files: dict[str, IO[str]] = {}

    # Creating and reopening a run

    def create(self, study: dict[str, Any], environment: dict[str, Any]) -> None:
        """A new run folder: resolved study, environment and the CSV headers."""
        self.run_dir.mkdir(parents=True, exist_ok=False)
        atomic_write_text(self.run_dir / "study.yaml", yaml.safe_dump(study, sort_keys=False))
        self.write_environment(environment)
        for name, columns in self.columns.items():
            atomic_write_text(
                self.run_dir / name, _csv_text(columns, [dict(zip(columns, columns, strict=True))])
            )

    def write_environment(self, environment: dict[str, Any]) -> None:
        atomic_write_text(self.run_dir / "environment.json", json.dumps(environment, indent=2) + "\n")

    def reopen(self) -> dict[str, dict[str, str]]:
        """Repair the run's files after a kill and return its finished trials by id."""
        for name, columns in self.columns.items():
            path = self.run_dir / name
            if not path.is_file():
                raise UserError(f"{path}: missing; this run folder cannot be resumed")
            _drop_torn_line(path)
            header, _ = _read_rows(path)
            if header != columns:
                raise UserError(
                    f"{path}: columns differ from this study's ({', '.join(header)}); "
                    "the run was made by a different study"
                )
        _, rows = _read_rows(self.run_dir / "trials.csv")
        finished = {row["trial_id"]: row for row in rows}
        if len(finished) != len(rows):
            raise UserError(f"{self.run_dir / 'trials.csv'}: a trial id appears twice")
        for name in ("epochs.csv", "per_class.csv"):
            self._keep_only(self.run_dir / name, finished)
        return finished

    def _keep_only(self, path: Path, finished: dict[str, Any]) -> None:
        """Drop rows of trials that never got their ``trials.csv`` row (they will run again)."""
        columns, rows = _read_rows(path)
        kept = [row for row in rows if row["trial_id"] in finished]
        if len(kept) != len(rows):
            header = dict(zip(columns, columns, strict=True))
            atomic_write_text(path, _csv_text(columns, [header, *kept]))

    # Appending finished trials

    def append(
        self, trial: dict[str, Any], epochs: list[dict[str, Any]], per_class: list[dict[str, Any]]
    ) -> None:
        """One finished trial: detail rows first, the ``trials.csv`` row (the commit) last."""
        trial_id = trial["trial_id"]
        self._write("epochs.csv", [{**row, "trial_id": trial_id} for row in epochs])
        self._write("per_class.csv", [{**row, "trial_id": trial_id} for row in per_class])
        self._write("trials.csv", [trial])

    def _write(self, name: str, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        f = self._files.get(name)
        if f is None:
            f = self._files[name] = (self.run_dir / name).open("a", newline="")
        f.write(_csv_text(self.columns[name], rows))
        f.flush()

    def close(self) -> None:
        for f in self._files.values():
            f.close()
        self._files.clear()


def _drop_torn_line(path: Path) -> None:
    """Cut a last line that a kill left without its newline."""
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        atomic_write_text(path, data[: data.rfind(b"\n") + 1].decode())


def read_study(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "study.yaml"
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise UserError(f"{path}: cannot read the run's study ({err})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: not a resolved study")
    return data
