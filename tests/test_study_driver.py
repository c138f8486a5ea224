"""The driver without Ray: pruning decisions, records and resume, on fixed learning curves.

The driver is what the Tune backend calls from its searcher, scheduler and callback; here a plain loop
plays Tune's part (trials one at a time, in plan order), with real Optuna studies in SQLite and the
real records writer.
"""

from __future__ import annotations

import csv
import sqlite3
from pathlib import Path

import numpy as np
import optuna
import pytest
import yaml

from helpers.curves import (
    BASE,
    CURVES_STUDY,
    EPOCHS,
    KINDS,
    average_curve,
    curve,
    epoch_metrics,
    expected_pruning,
)
from tinyab.records import RecordsWriter
from tinyab.study.driver import Driver, TrialOutcome
from tinyab.study.optuna_bridge import OptunaBridge
from tinyab.study.plan import StudyPlan, search_plan
from tinyab.study.progress import Progress, plan_lines
from tinyab.study.spec import SearchStudy, build_study

BASE_SCHEME = "variance_scaling"


def curves_plan() -> StudyPlan:
    study = build_study(SearchStudy, CURVES_STUDY, Path("curves.yaml"), None)
    return search_plan(study, "default", "curves.yaml")


def session(plan: StudyPlan, run_dir: Path, resume: bool) -> tuple[Driver, list[str]]:
    """One driver session: records created or reopened, Optuna reconciled with them."""
    records = RecordsWriter(run_dir, list(plan.columns), plan.metric)
    finished = records.reopen() if resume else {}
    if not resume:
        records.create(plan.record, {})
    bridge = OptunaBridge(plan, run_dir / "optuna.db")
    bridge.reconcile(finished)
    lines: list[str] = []
    progress = Progress(len(plan.slots()), "val_top1", "max")
    return Driver(plan, list(finished.values()), bridge, records, progress, lines.append), lines


def play(driver: Driver, limit: int | None = None, abandon_last: bool = False) -> None:
    """Play Tune's part: start each trial, stream its epochs, stop it when the driver says so."""
    played = 0
    while (limit is None or played < limit) and (task := driver.next_trial()) is not None:
        played += 1
        driver.on_start(task)
        scheme = task.values["init.scheme"]
        if KINDS[task.seed] == "broken":
            driver.on_finish(task, TrialOutcome("failed", error=f"RuntimeError: curve {task.seed} broke"), {})
            continue
        last = EPOCHS if not (abandon_last and played == limit) else 2
        stopped = False
        for epoch in range(1, last + 1):
            if driver.on_epoch(
                task, {**epoch_metrics(scheme, task.seed, epoch), "node": "n", "device": "cpu"}
            ):
                stopped = True
                break
        if abandon_last and played == limit:
            return  # the driver dies mid-trial: nothing recorded, Optuna's trial left RUNNING
        outcome = None if stopped else TrialOutcome("completed", [{"class_index": 0, "accuracy": 0.5}])
        driver.on_finish(task, outcome, {"node": "n", "device": "cpu"})
    driver.records.close()


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def optuna_states(db: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(db) as con:
        rows = con.execute(
            "SELECT a.value_json, t.state FROM trials t JOIN trial_user_attributes a "
            "ON a.trial_id = t.trial_id AND a.key = 'tinyab_trial'"
        ).fetchall()
    return [(trial_id.strip('"'), state) for trial_id, state in rows]


def expected() -> dict[tuple[str, int], int]:
    return {
        (scheme, seed): epoch
        for scheme in BASE
        for seed, epoch in expected_pruning(scheme, list(range(len(KINDS))), n_startup=2).items()
    }


def check_records(run_dir: Path) -> list[dict[str, str]]:
    trials = read_csv(run_dir / "trials.csv")
    assert sorted(t["trial_id"] for t in trials) == [f"t{i:04d}" for i in range(len(KINDS) * len(BASE))]
    pruned = {
        (t["init.scheme"], int(t["seed"])): int(t["epochs_run"]) for t in trials if t["status"] == "pruned"
    }
    assert pruned == expected() == {(s, seed): 3 for s in BASE for seed in (2, 4)}
    failed = {(t["init.scheme"], int(t["seed"])) for t in trials if t["status"] == "failed"}
    assert failed == {(s, 6) for s in BASE}
    for t in trials:
        if t["status"] == "completed":  # the objective is the best epoch of the stream
            seed, scheme = int(t["seed"]), t["init.scheme"]
            best = max(epoch_metrics(scheme, seed, e)["val_top1"] for e in range(1, EPOCHS + 1))
            assert float(t["best_val_top1"]) == pytest.approx(best) and t["epochs_run"] == str(EPOCHS)
    epochs = read_csv(run_dir / "epochs.csv")
    for t in trials:
        rows = [int(e["epoch"]) for e in epochs if e["trial_id"] == t["trial_id"]]
        assert rows == list(range(1, int(t["epochs_run"]) + 1))
    return trials


def test_the_driver_prunes_within_each_arm_exactly_as_the_median_rule(tmp_path: Path) -> None:
    plan = curves_plan()
    driver, lines = session(plan, tmp_path / "run", resume=False)
    play(driver)
    trials = check_records(tmp_path / "run")
    states = dict(optuna_states(tmp_path / "run" / "optuna.db"))
    want = {"completed": "COMPLETE", "pruned": "PRUNED", "failed": "FAIL"}
    assert {t["trial_id"]: want[t["status"]] for t in trials} == states
    assert f"| {len(trials)}/{len(trials)} (4 pruned, 2 failed)" in lines[-1]
    assert all(line.startswith("[") and len(line) <= 120 for line in lines)  # elapsed time first, 120 cols


def test_a_pruner_on_the_weight_average_judges_that_metric_and_spares_the_late_curve(tmp_path: Path) -> None:
    """With no warm-up the median rule on val_top1 stops the late curve at epoch 1; judging
    val_top1_ema, which ranks the curves as they end, it stops only the bad ones, and Optuna holds the
    weight average's values as the trials' intermediate values."""
    pruner = {"name": "median", "warmup_epochs": 0, "options": {"n_startup_trials": 2}}
    fields = {**CURVES_STUDY, "overrides": {"epochs": EPOCHS, "ema_epochs": 1}}
    seeds = list(range(len(KINDS)))
    for judged, values in (("val_top1", curve), ("val_top1_ema", average_curve)):
        study = {**fields, "pruner": {**pruner, "metric": judged}}
        plan = search_plan(build_study(SearchStudy, study, Path("c.yaml"), None), "default", "c.yaml")
        driver, _ = session(plan, tmp_path / judged, resume=False)
        play(driver)
        trials = read_csv(tmp_path / judged / "trials.csv")
        pruned = {
            (t["init.scheme"], int(t["seed"])): int(t["epochs_run"])
            for t in trials
            if t["status"] == "pruned"
        }
        want = {(s, seed): e for s in BASE for seed, e in expected_pruning(s, seeds, 2, 0, values).items()}
        assert pruned == want
        late = KINDS.index("late")
        assert ((BASE_SCHEME, late) in pruned) == (judged == "val_top1")
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'val_top1_ema' / 'optuna.db'}")
    arm = optuna.load_study(study_name="curves [0] init.scheme=variance_scaling", storage=storage)
    first = next(t for t in arm.trials if t.user_attrs["tinyab_trial"] == "t0000")
    assert first.intermediate_values == pytest.approx(
        {e: average_curve(BASE_SCHEME, 0, e) for e in range(1, EPOCHS + 1)}
    )
    assert arm.user_attrs["intermediate_values"] == "val_top1_ema"


def test_a_session_killed_mid_trial_resumes_with_every_trial_recorded_once(tmp_path: Path) -> None:
    plan = curves_plan()
    run_dir = tmp_path / "run"
    first, _ = session(plan, run_dir, resume=False)
    play(first, limit=5, abandon_last=True)  # 4 trials recorded, the 5th dies with the driver
    with (run_dir / "epochs.csv").open("a") as f:
        f.write("t0004,1,0.5")  # and a torn line
    assert len(read_csv(run_dir / "trials.csv")) == 4
    second, _ = session(plan, run_dir, resume=True)
    assert second.todo[0].trial_id == "t0004"
    play(second)
    status = {t["trial_id"]: t["status"] for t in check_records(run_dir)}
    assert status["t0004"] == "pruned"  # xavier, seed 2: a bad curve
    states = optuna_states(run_dir / "optuna.db")
    by_trial: dict[str, list[str]] = {}
    for trial_id, state in states:
        by_trial.setdefault(trial_id, []).append(state)
    assert by_trial["t0004"] == ["FAIL", "PRUNED"]  # the abandoned attempt, then the real one
    assert all(len(s) == 1 for t, s in by_trial.items() if t != "t0004")


# Sequential seeds: batches grow while a comparison is open (no Ray; the same loop plays Tune's part)

SEQUENTIAL = {
    **CURVES_STUDY,
    "name": "sequential",
    "overrides": {"epochs": 2},
    "seeds": 3,
    "pruner": {"name": "none"},
    "margin": 0.02,
    "sequential": {"step": 2, "max_seeds": 11},
}


def top1(scheme: str, seed: int, gap: float) -> float:
    """Arm value: a large gap between the schemes, a little seed-to-seed noise."""
    first = scheme == "variance_scaling"
    return 0.5 + (gap if first else 0.0) + 0.01 * np.sin(3.7 * seed + first)


def play_values(driver: Driver, gap: float, limit: int | None = None) -> None:
    played = 0
    while (limit is None or played < limit) and (task := driver.next_trial()) is not None:
        played += 1
        driver.on_start(task)
        value = top1(task.values["init.scheme"], task.seed, gap) + 0.003 * np.cos(task.seed)
        for epoch in (1, 2):
            metrics = {
                "epoch": epoch,
                "train_loss": 1.0,
                "val_loss": 1.0,
                "val_top1": value,
                "train_top1": 0.6,
            }
            driver.on_epoch(task, metrics)
        driver.on_finish(task, TrialOutcome("completed"), {"device": "cpu"})
    driver.records.close()


def sequential_session(run_dir: Path, resume: bool) -> tuple[Driver, list[str]]:
    from tinyab.study.run import RunOptions, replay_growth, seed_growth

    study = build_study(SearchStudy, SEQUENTIAL, Path("sequential.yaml"), None)
    plan = search_plan(study, "default", "sequential.yaml")
    records = RecordsWriter(run_dir, list(plan.columns), plan.metric)
    finished = records.reopen() if resume else {}
    if not resume:
        records.create(plan.record, {})
    growth = seed_growth(plan, RunOptions("default", "sequential.yaml"))
    assert growth is not None
    plan = replay_growth(plan, growth, list(finished.values()))
    bridge = OptunaBridge(plan, run_dir / "optuna.db")
    bridge.reconcile(finished)
    lines: list[str] = []
    progress = Progress(len(plan.slots()), "val_top1", "max")
    return Driver(plan, list(finished.values()), bridge, records, progress, lines.append, growth), lines


def test_a_large_effect_stops_the_seeds_early_and_a_null_one_runs_to_max_seeds(tmp_path: Path) -> None:
    driver, lines = sequential_session(tmp_path / "big", resume=False)
    play_values(driver, gap=0.2)
    trials = read_csv(tmp_path / "big" / "trials.csv")
    assert len(trials) == 2 * 5  # inconclusive at 3 seeds (O'Brien–Fleming), decided at 5
    assert [line.split("] ", 1)[1] for line in lines if "] look" in line] == [
        "look at 3 seeds: 0 of 1 comparisons decided; open: init.scheme: variance_scaling vs xavier",
        "look at 5 seeds: 1 of 1 comparisons decided; open: none",
    ]
    assert sorted(t["trial_id"] for t in trials) == [f"t{i:04d}" for i in range(10)]
    driver, lines = sequential_session(tmp_path / "null", resume=False)
    play_values(driver, gap=0.0)
    seeds = sorted({int(t["seed"]) for t in read_csv(tmp_path / "null" / "trials.csv")})
    assert seeds[:3] == [0, 1, 2] and len(seeds) < 11  # the null ends equivalent within ±0.02 early
    assert f"] look at {len(seeds)} seeds: 1 of 1 comparisons decided" in lines[-1]


def test_a_sequential_run_killed_mid_batch_resumes_the_same_sequence(tmp_path: Path) -> None:
    first, _ = sequential_session(tmp_path / "run", resume=False)
    play_values(first, gap=0.2, limit=7)  # the first batch (6 trials) and one of the next
    second, _ = sequential_session(tmp_path / "run", resume=True)
    assert [s.trial_id for s in second.todo] == ["t0007", "t0008", "t0009"]
    play_values(second, gap=0.2)
    trials = read_csv(tmp_path / "run" / "trials.csv")
    assert sorted(t["trial_id"] for t in trials) == [f"t{i:04d}" for i in range(10)]
    assert sorted((t["init.scheme"], t["seed"]) for t in trials) == sorted(
        (s, str(seed)) for s in BASE for seed in range(5)
    )


def test_resume_with_more_seeds_adds_them_with_new_ids_and_refuses_other_changes(tmp_path: Path) -> None:
    from tinyab.errors import UserError
    from tinyab.study.run import resumed_plan

    fixed = {**SEQUENTIAL, "sequential": None}
    run_dir = tmp_path / "run"

    def plan_for(seeds: int, **changes: object) -> StudyPlan:
        study = build_study(SearchStudy, {**fixed, "seeds": seeds, **changes}, Path("s.yaml"), None)
        return search_plan(study, "default", "s.yaml")

    plan = plan_for(3)
    records = RecordsWriter(run_dir, list(plan.columns), plan.metric)
    records.create(plan.record, {})
    bridge = OptunaBridge(plan, run_dir / "optuna.db")
    play_values(Driver(plan, [], bridge, records, Progress(6, "val_top1", "max"), print), gap=0.0)
    grown = resumed_plan(run_dir, plan_for(5))
    slots = grown.slots()
    assert [s.trial_id for s in slots[:6]] == [s.trial_id for s in plan.slots()]  # nothing renumbered
    assert sorted((s.seed, s.trial_id) for s in slots[6:]) == [
        (3, "t0006"), (3, "t0007"), (4, "t0008"), (4, "t0009"),
    ]  # fmt: skip
    stored = yaml.safe_load((run_dir / "study.yaml").read_text())
    assert stored["seeds"] == [0, 1, 2] and stored["grown_seeds"] == [[3, 4]]
    assert resumed_plan(run_dir, plan_for(3)).slots() == slots  # resuming as first asked: the same run
    with pytest.raises(UserError, match="field 'margin' differs"):
        resumed_plan(run_dir, plan_for(5, margin=0.05))


def test_every_trial_streams_to_tensorboard_and_mlflow_as_its_epochs_arrive(tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from tinyab.study.monitors import MlflowMonitor, TensorBoardMonitor

    plan = curves_plan()
    run_dir = tmp_path / "run"
    records = RecordsWriter(run_dir, list(plan.columns), plan.metric)
    records.create(plan.record, {})
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"  # a real local MLflow store (the file store is retired)
    monitors = [TensorBoardMonitor(run_dir), MlflowMonitor(uri, "curves", "run", plan.record)]
    progress = Progress(len(plan.slots()), "val_top1", "max")
    driver = Driver(
        plan, [], OptunaBridge(plan, run_dir / "optuna.db"), records, progress, print, None, monitors
    )
    play(driver)
    for monitor in monitors:
        monitor.close()
    trials = {t["trial_id"]: t for t in read_csv(run_dir / "trials.csv")}
    events = EventAccumulator(str(run_dir / "tensorboard" / "t0000"))
    events.Reload()
    curve = [(e.step, e.value) for e in events.Scalars("top1/validation")]
    assert curve == [
        (e, pytest.approx(epoch_metrics("variance_scaling", 0, e)["val_top1"])) for e in range(1, 7)
    ]
    assert {"loss/train", "schedule/learning_rate", "schedule/resolution_px"} <= set(events.Tags()["scalars"])
    client = MlflowClient(tracking_uri=uri)
    (experiment,) = [e for e in client.search_experiments() if e.name == "curves"]
    runs = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}
    assert set(runs) == {"run", *trials}  # the study's run and one nested run per trial
    pruned = next(i for i, t in trials.items() if t["status"] == "pruned")
    history = client.get_metric_history(runs[pruned].info.run_id, "val_top1")
    assert [m.step for m in history] == list(range(1, int(trials[pruned]["epochs_run"]) + 1))
    assert runs[pruned].data.tags["tinyab.status"] == "pruned"
    assert runs["t0000"].data.params["init.scheme"] == "variance_scaling"


# Configurations and their seeds: the pruner chooses between configurations, never between seeds

CONFIGS_STUDY = {
    **CURVES_STUDY,
    "name": "configs",
    "params": {
        "init.scheme": {"role": "scientific", "type": "grid", "values": list(BASE)},
        "optim.lr": {"role": "nuisance", "type": "loguniform", "low": 0.01, "high": 0.5},
    },
    "num_samples": 3,
    "seeds": 2,
    "pruner": {"name": "median", "warmup_epochs": 0, "options": {"n_startup_trials": 1}},
}
LEVEL = {0: 0.50, 1: 0.20, 2: 0.55}  # configuration 1 is poor, 2 the best


def config_top1(config: int, seed: int, epoch: int) -> float:
    """Seed 1 of every configuration lies 0.06 below seed 0: below the median of the trials finished
    before it, so a pruner judging seeds would stop it."""
    return LEVEL[config] + 0.02 * epoch - 0.06 * seed


def stream(driver: Driver, task, config: int, upto: int = EPOCHS) -> bool:
    """Feed a trial's epochs up to ``upto``; True when the driver stops it."""
    for epoch in range(1, upto + 1):
        metrics = {**epoch_metrics(BASE_SCHEME, 0, epoch), "val_top1": config_top1(config, task.seed, epoch)}
        if driver.on_epoch(task, metrics):
            return True
    return False


def test_a_pruned_configuration_takes_its_seeds_and_a_kept_one_keeps_them(tmp_path: Path) -> None:
    plan = search_plan(build_study(SearchStudy, CONFIGS_STUDY, Path("c.yaml"), None), "default", "c.yaml")
    slots = {s.trial_id: s for s in plan.slots()}
    judge = plan.judged_by
    assert [judge[t] for t in ("t0000", "t0002", "t0004", "t0006")] == ["t0000", "t0000", "t0004", "t0004"]
    lines = plan_lines(plan, "default", plan.slots(), plan.slots(), {}, tmp_path / "run")
    assert any(
        line.endswith("within each arm, each configuration judged by its first seed") for line in lines
    )
    driver, lines = session(plan, tmp_path / "run", resume=False)
    while (task := driver.next_trial()) is not None:  # one at a time, in plan order
        driver.on_start(task)
        stopped = stream(driver, task, slots[task.trial_id].config)
        driver.on_finish(task, None if stopped else TrialOutcome("completed"), {})
    driver.records.close()
    trials = {t["trial_id"]: t for t in read_csv(tmp_path / "run" / "trials.csv")}
    fate = {(slots[i].config, slots[i].seed): (t["status"], int(t["epochs_run"])) for i, t in trials.items()}
    assert fate == {
        (0, 0): ("completed", EPOCHS),
        (0, 1): ("completed", EPOCHS),  # below the median of t0000, never judged: its first seed was kept
        (1, 0): ("pruned", 1),  # the first seed judged and stopped after epoch 1
        (1, 1): ("pruned", 0),  # not run
        (2, 0): ("completed", EPOCHS),
        (2, 1): ("completed", EPOCHS),
    }
    assert (
        len(trials) == len(slots) and sum(1 for line in lines if "not run: its configuration's" in line) == 2
    )
    states = dict(optuna_states(tmp_path / "run" / "optuna.db"))
    assert {
        i: states[i] for i in trials if fate[(slots[i].config, slots[i].seed)][0] == "pruned"
    } == dict.fromkeys((i for i in trials if slots[i].config == 1), "PRUNED")


def test_a_seed_running_beside_its_configurations_first_seed_stops_when_that_one_is_pruned(
    tmp_path: Path,
) -> None:
    plan = search_plan(build_study(SearchStudy, CONFIGS_STUDY, Path("c.yaml"), None), "default", "c.yaml")
    slots = {s.trial_id: s for s in plan.slots()}
    driver, _ = session(plan, tmp_path / "run", resume=False)
    tasks = {}
    while (task := driver.next_trial()) is not None and task.trial_id != "t0004":
        driver.on_start(task)
        stopped = stream(driver, task, slots[task.trial_id].config)
        driver.on_finish(task, None if stopped else TrialOutcome("completed"), {})
    tasks["t0004"] = task  # configuration 1's first seed, arm 0
    tasks["t0005"] = driver.next_trial()
    tasks["t0006"] = driver.next_trial()  # its second seed, started before the first is judged
    for task in tasks.values():
        driver.on_start(task)
    assert not stream(driver, tasks["t0006"], 1, upto=1)  # never judged itself
    assert stream(driver, tasks["t0004"], 1, upto=1)  # the first seed is pruned at epoch 1
    assert stream(driver, tasks["t0006"], 1, upto=2)  # so the second stops at its next epoch
