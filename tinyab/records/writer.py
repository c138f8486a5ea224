"""Write a run's records as trials finish, so that a killed writer leaves valid files.

Each finished trial appends its epoch rows and per-class rows first and its ``trials.csv`` row last,
each as one flushed write; a trial counts as done only once its ``trials.csv`` row exists. Reopening a
run repairs what a kill can leave behind: a torn last line, and epoch or per-class rows of a trial
that has no ``trials.csv`` row yet.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

import yaml

from tinyab.errors import UserError
from tinyab.io import atomic_write_text, current_umask
from tinyab.records.csvfiles import complete_lines, csv_text, read_rows
from tinyab.records.schema import EPOCH_COLUMNS, PER_CLASS_COLUMNS, TrialRecord, trial_columns


def write_yaml(path: Path, data: Mapping[str, Any]) -> None:
    atomic_write_text(path, yaml.safe_dump(dict(data), sort_keys=False))


def write_json(path: Path, data: Mapping[str, Any]) -> None:
    atomic_write_text(path, json.dumps(data, indent=2) + "\n")


class RecordsWriter:
    """Appends finished trials to a run folder; one instance per driver session."""

    def __init__(self, run_dir: Path, param_columns: list[str], metric: str) -> None:
        self.run_dir = run_dir
        self.metric = metric
        self.params = list(param_columns)
        self.columns = {
            "trials.csv": trial_columns(param_columns, metric),
            "epochs.csv": EPOCH_COLUMNS,
            "per_class.csv": PER_CLASS_COLUMNS,
        }
        self._files: dict[str, IO[str]] = {}

    def create(self, study: Mapping[str, Any], environment: Mapping[str, Any]) -> None:
        """A new run folder: resolved study, environment and the CSV headers. It is filled under a
        hidden name and renamed into place, so a kill never leaves a half-made run to resume."""
        if self.run_dir.exists():
            raise UserError(f"{self.run_dir}: already exists; pass --resume to continue it")
        self.run_dir.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{self.run_dir.name}.", dir=self.run_dir.parent))
        os.chmod(staging, 0o777 & ~current_umask())
        write_yaml(staging / "study.yaml", study)
        write_json(staging / "environment.json", environment)
        for name, columns in self.columns.items():
            atomic_write_text(staging / name, csv_text(columns, [], header=True))
        try:
            staging.rename(self.run_dir)  # refused if another driver made the folder meanwhile
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)
            raise UserError(f"{self.run_dir}: already exists; pass --resume to continue it") from None

    def write_environment(self, environment: Mapping[str, Any]) -> None:
        write_json(self.run_dir / "environment.json", environment)

    def reopen(self) -> dict[str, TrialRecord]:
        """Repair the run's files after a kill and return its finished trials by id."""
        for name, columns in self.columns.items():
            path = self.run_dir / name
            if not path.is_file():
                raise UserError(f"{path}: missing; this run folder cannot be resumed")
            data = path.read_bytes()
            if complete_lines(data) != data:
                atomic_write_text(path, complete_lines(data).decode())
            header, _ = read_rows(path)
            if header != columns:
                raise UserError(
                    f"{path}: columns differ from this study's ({', '.join(header)}); "
                    "the run was made by a different study or another version of tinyab"
                )
        _, rows = read_rows(self.run_dir / "trials.csv")
        finished = {row["trial_id"]: TrialRecord.from_row(row, self.params, self.metric) for row in rows}
        if len(finished) != len(rows):
            raise UserError(f"{self.run_dir / 'trials.csv'}: a trial id appears twice")
        for name in ("epochs.csv", "per_class.csv"):
            self._keep_only(self.run_dir / name, finished)
        return finished

    def _keep_only(self, path: Path, finished: Mapping[str, Any]) -> None:
        """Drop rows of trials that never got their ``trials.csv`` row (they will run again)."""
        columns, rows = read_rows(path)
        kept = [row for row in rows if row["trial_id"] in finished]
        if len(kept) != len(rows):
            atomic_write_text(path, csv_text(columns, kept, header=True))

    def append(
        self, record: TrialRecord, epochs: list[Mapping[str, Any]], per_class: list[Mapping[str, Any]]
    ) -> None:
        """One finished trial: detail rows first, the ``trials.csv`` row (the commit) last."""
        trial_id = record.trial_id
        self._write("epochs.csv", [{**row, "trial_id": trial_id} for row in epochs])
        self._write("per_class.csv", [{**row, "trial_id": trial_id} for row in per_class])
        self._write("trials.csv", [record.to_row(self.metric)])

    def _write(self, name: str, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        f = self._files.get(name)
        if f is None:
            f = self._files[name] = (self.run_dir / name).open("a", newline="")
        f.write(csv_text(self.columns[name], rows))
        f.flush()

    def close(self) -> None:
        for f in self._files.values():
            f.close()
        self._files.clear()
