"""Read records: the one reader for the report, for resume and for the plan's look at earlier runs.

A results folder may hold one run, a study (several runs) or many studies: every folder holding both
``study.yaml`` and ``trials.csv`` is a run. Runs of the same study with the same varied keys are pooled.
A search killed mid-write leaves a cut last line; it is dropped with a warning, never a traceback.
"""

from __future__ import annotations

import io
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from tinyab.errors import UserError
from tinyab.records.csvfiles import complete_lines
from tinyab.records.schema import STATUSES

CONTINUOUS = ("uniform", "loguniform", "int")
CATEGORICAL = ("grid", "choice")
TRIAL_COLUMNS = ("trial_id", "status", "seed")


@dataclass
class StudyRecords:
    """The pooled records of one study: its resolved spec and one DataFrame per records file."""

    name: str
    runs: list[Path]
    spec: dict[str, Any]
    trials: pd.DataFrame
    epochs: pd.DataFrame | None
    per_class: pd.DataFrame | None
    optuna_dbs: list[Path]
    environment: dict[str, Any] | None
    warnings: list[str] = field(default_factory=list)

    @property
    def kind(self) -> str:
        return str(self.spec.get("kind", "search"))

    @property
    def params(self) -> dict[str, dict[str, Any]]:
        return self.spec.get("params") or {}

    def varied_keys(self) -> list[str]:
        """Hyperparameter keys that vary in this study and have a column in trials.csv."""
        return [k for k, p in self.params.items() if p.get("role") != "fixed" and k in self.trials.columns]

    def distribution(self, key: str) -> str | None:
        """'grid', 'choice', 'uniform', 'loguniform' or 'int' for a param key (None if not stated).

        Read from ``type`` (``{type: grid, values: [...]}``, as the search driver writes it) or from the
        distribution's own key (``{grid: [...]}``).
        """
        spec = self.params.get(key) or {}
        if spec.get("type") in (*CATEGORICAL, *CONTINUOUS):
            return str(spec["type"])
        return next((d for d in (*CATEGORICAL, *CONTINUOUS) if d in spec), None)

    def listed_values(self, key: str) -> list[Any]:
        """The values a grid/choice key lists, in the study's order ([] for other keys)."""
        spec = self.params.get(key) or {}
        values = spec.get("values") if "type" in spec else spec.get(self.distribution(key) or "")
        return list(values) if isinstance(values, list) else []


def find_runs(path: Path) -> list[Path]:
    """Every folder at or below ``path`` that holds ``study.yaml`` and ``trials.csv``, sorted (hidden
    folders, such as a run folder a killed driver was still making, are not runs)."""
    if not path.exists():
        raise UserError(f"{path}: no such file or folder")
    if path.is_file():
        path = path.parent
    found = {
        p.parent
        for p in path.rglob("trials.csv")
        if (p.parent / "study.yaml").is_file()
        and not any(part.startswith(".") for part in p.parent.relative_to(path).parts)
    }
    if (path / "trials.csv").is_file() and (path / "study.yaml").is_file():
        found.add(path)
    return sorted(found)


def read_records_csv(path: Path, warn: list[str]) -> pd.DataFrame | None:
    """A records CSV as written so far: a cut last line and malformed rows are dropped with a warning."""
    if not path.is_file():
        return None
    raw = path.read_bytes()
    if not raw.strip():
        warn.append(f"{path}: empty file")
        return None
    if complete_lines(raw) != raw:
        raw = complete_lines(raw)
        warn.append(f"{path}: last line is incomplete (search killed while writing?); ignored")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", pd.errors.ParserWarning)
            frame = pd.read_csv(io.BytesIO(raw), on_bad_lines="warn", dtype={"error": "str"})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise UserError(f"{path}: not a readable CSV file ({str(err).splitlines()[0]})") from err
    bad = sum(str(w.message).count("Skipping line") for w in caught)
    if bad:
        warn.append(f"{path}: {bad} malformed row(s) ignored")
    return frame


def read_study(run_dir: Path) -> dict[str, Any]:
    """A run's ``study.yaml``: the resolved study (name, kind, metric, mode, params, ...)."""
    path = run_dir / "study.yaml"
    try:
        spec = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError, UnicodeDecodeError) as err:
        raise UserError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from err
    if not isinstance(spec, dict):
        raise UserError(f"{path}: expected a mapping with name, kind, metric, params")
    params = spec.get("params") or {}
    if not isinstance(params, dict) or not all(isinstance(v, dict) for v in params.values()):
        raise UserError(f"{path}: params: expected a mapping of key -> {{role: ..., <distribution>: ...}}")
    return spec


@dataclass
class _Run:
    path: Path
    spec: dict[str, Any]
    trials: pd.DataFrame
    epochs: pd.DataFrame | None
    per_class: pd.DataFrame | None
    warnings: list[str]


def _load_run(path: Path, skipped: list[str]) -> _Run | None:
    warn: list[str] = []
    spec = read_study(path)
    trials = read_records_csv(path / "trials.csv", warn)
    if trials is None or trials.empty:
        skipped.extend([*warn, f"{path}: no finished trials yet; run skipped"])
        return None
    missing = [c for c in TRIAL_COLUMNS if c not in trials.columns]
    if missing:
        raise UserError(f"{path / 'trials.csv'}: missing column(s) {', '.join(missing)}")
    trials["trial_id"] = trials["trial_id"].astype(str)
    twice = trials["trial_id"][trials["trial_id"].duplicated()]
    if len(twice):
        first = twice.iloc[0]
        times = int((trials["trial_id"] == first).sum())
        raise UserError(
            f"{path / 'trials.csv'}: trial {first} is recorded {times} times ({twice.nunique()} trial(s) "
            "duplicated): the records are inconsistent (two drivers on one run?); counting them would "
            "double n and break the pairing"
        )
    trials["status"] = trials["status"].astype(str)
    unknown = sorted(set(trials["status"]) - set(STATUSES))
    if unknown:
        warn.append(f"{path / 'trials.csv'}: unknown status value(s) {', '.join(unknown)} counted as failed")
        trials.loc[~trials["status"].isin(STATUSES), "status"] = "failed"
    epochs = read_records_csv(path / "epochs.csv", warn)
    per_class = read_records_csv(path / "per_class.csv", warn)
    for frame in (epochs, per_class):
        if frame is not None and "trial_id" in frame.columns:
            frame["trial_id"] = frame["trial_id"].astype(str)
    if epochs is not None and "trial_id" in epochs.columns:
        unfinished = set(epochs["trial_id"]) - set(trials["trial_id"])
        if unfinished:
            warn.append(f"{path}: {len(unfinished)} trial(s) in epochs.csv not finished yet; ignored")
            epochs = epochs[epochs["trial_id"].isin(trials["trial_id"])]
    return _Run(path, spec, trials, epochs, per_class, warn)


def _group_key(run: _Run) -> tuple[str, ...]:
    """Runs pool when they are the same study with the same design; a sequential run's looks are its
    own, so it never pools with a fixed-design run (or one with other batches)."""
    spec = run.spec
    return (
        str(spec.get("name", run.path.name)),
        str(spec.get("kind", "search")),
        *sorted(spec.get("params") or {}),
        json.dumps(spec.get("sequential"), sort_keys=True),
    )


def _pool(runs: list[_Run], root: Path) -> StudyRecords:
    """One StudyRecords from runs of the same study; trial ids are prefixed by the run when pooling."""
    many = len(runs) > 1
    warn = [w for r in runs for w in r.warnings]

    def tag(frame: pd.DataFrame | None, run: _Run) -> pd.DataFrame | None:
        if frame is None:
            return None
        frame = frame.copy()
        if many:
            frame["trial_id"] = run.path.name + "/" + frame["trial_id"]
        frame["run"] = str(run.path.relative_to(root)) if run.path != root else run.path.name
        return frame

    def concat(frames: list[pd.DataFrame | None]) -> pd.DataFrame | None:
        present = [f for f in frames if f is not None]
        return pd.concat(present, ignore_index=True) if present else None

    env_path = runs[-1].path / "environment.json"
    environment = None
    if env_path.is_file():
        try:
            environment = json.loads(env_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            warn.append(f"{env_path}: not valid JSON; ignored")
    return StudyRecords(
        name=_group_key(runs[0])[0],
        runs=[r.path for r in runs],
        spec=runs[0].spec,
        trials=concat([tag(r.trials, r) for r in runs]),
        epochs=concat([tag(r.epochs, r) for r in runs]),
        per_class=concat([tag(r.per_class, r) for r in runs]),
        optuna_dbs=[r.path / "optuna.db" for r in runs if (r.path / "optuna.db").is_file()],
        environment=environment,
        warnings=warn,
    )


def load_studies(path: Path) -> tuple[list[StudyRecords], list[str]]:
    """Every study under ``path`` (its runs pooled) and the warnings about runs that were skipped.

    Raises UserError when there is nothing to report.
    """
    paths = find_runs(path)
    if not paths:
        raise UserError(f"{path}: no tinyab records found (expected folders with study.yaml and trials.csv)")
    root = path if path.is_dir() else path.parent
    skipped: list[str] = []
    groups: dict[tuple, list[_Run]] = {}
    for run_path in paths:
        run = _load_run(run_path, skipped)
        if run is not None:
            groups.setdefault(_group_key(run), []).append(run)
    if not groups:
        raise UserError(f"{path}: no finished trials in {len(paths)} run(s) yet; nothing to report")
    return [_pool(runs, root) for runs in groups.values()], skipped
