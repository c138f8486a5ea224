"""Faults inside a study, on a real local Ray: a worker killed mid-trial and a trial that raises are
retried on a fresh worker (max_failures) and recorded once, with their attempts."""

from __future__ import annotations

import csv
import sqlite3
from pathlib import Path

import pytest
import ray.cloudpickle

from helpers import curves, faulty
from tinyab.study.ray_runtime import RayOptions
from tinyab.study.run import RunOptions, run_search
from tinyab.study.spec import SearchStudy, build_study

pytestmark = pytest.mark.slow
ray.cloudpickle.register_pickle_by_value(faulty)  # workers cannot import tests/
ray.cloudpickle.register_pickle_by_value(curves)

STUDY = {
    **curves.CURVES_STUDY,
    "name": "faulty",
    "overrides": {"epochs": 3},
    "seeds": 3,
    "pruner": {"name": "none"},
    "max_failures": 1,
    "resources": {"cpus": 1, "concurrency": 2},
}


def test_a_killed_worker_and_a_raising_trial_are_retried_and_recorded_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TINYAB_FAULT_DIR", str(tmp_path))  # the workers inherit it from the driver
    study = build_study(SearchStudy, STUDY, Path("faulty.yaml"), None)
    lines: list[str] = []
    options = RunOptions(
        "default",
        "faulty.yaml",
        ray=RayOptions(dashboard=False),
        train_fn=faulty.faulty_train,
        out=lines.append,
    )
    outcome = run_search(study, tmp_path / "run", options)
    assert outcome.complete
    with (tmp_path / "run" / "trials.csv").open() as f:
        trials = list(csv.DictReader(f))
    assert sorted(t["trial_id"] for t in trials) == [f"t{i:04d}" for i in range(6)]  # each once
    assert {(t["seed"], t["attempts"], t["status"]) for t in trials} == {
        ("0", "1", "completed"), ("1", "2", "completed"), ("2", "2", "completed"),
    }  # fmt: skip
    with (tmp_path / "run" / "epochs.csv").open() as f:
        epochs = [(e["trial_id"], e["epoch"]) for e in csv.DictReader(f)]
    assert sorted(epochs) == sorted((t["trial_id"], str(e)) for t in trials for e in (1, 2, 3))
    retries = [line for line in lines if "retrying on a fresh worker" in line]
    assert len(retries) == 4 and any("CUDA out of memory (simulated)" in line for line in retries)
    with sqlite3.connect(tmp_path / "run" / "optuna.db") as con:
        states = [state for (state,) in con.execute("SELECT state FROM trials")]
    assert states == ["COMPLETE"] * 6  # one Optuna trial per tinyab trial, told once
