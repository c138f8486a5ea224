"""Run a search study on Ray Tune, with Optuna choosing nuisance values and Optuna's pruners stopping trials.

Ray Tune distributes the trials (local Ray or a cluster; reused actors; per-trial CPUs and GPU
fractions). Three small adapters connect Tune to the driver's :class:`SearchDriver`:

- ``_PlanSearcher`` (a Tune Searcher) hands out the planned trials, asking Optuna for nuisance values;
- ``_PruningScheduler`` (a Tune scheduler) reports each epoch to the arm's Optuna trial and returns
  STOP when its pruner says so (or when the arm's own ASHA does, for ``pruner: asha``);
- ``_Recorder`` (a Tune callback) writes each finished trial to the records and tells Optuna.

Everything the records hold comes from the driver, not from Tune's folders.
"""

from __future__ import annotations

import datetime
import json
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tinyab.config import load_recipe
from tinyab.errors import ConfigError, UserError
from tinyab.study.environment import environment
from tinyab.study.optuna_bridge import OptunaBridge, arm_label
from tinyab.study.plan import TrialSlot, plan_trials
from tinyab.study.progress import Progress, summary_table
from tinyab.study.ray_runtime import RayInfo, ray_session
from tinyab.study.records import RecordsWriter, read_study, trial_columns
from tinyab.study.spec import StudySpec
from tinyab.study.trainable import RESULT_KEY, run_trial

Printer = Callable[[str], None]
SUMMARY_KEYS = ("best_val_top1", "best_epoch", "final_val_top1", "final_train_top1", "epochs_run", "device")


@dataclass
class SearchOutcome:
    """What a search left: its run folder, every recorded trial (all sessions) and whether it finished."""

    run_dir: Path
    trials: list[dict[str, Any]]
    complete: bool


# Run folders


def new_run_dir(results: Path, study: StudySpec, profile: str) -> Path:
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    run_dir = results / study.name / f"{profile}-{stamp}"
    suffix = 1
    while run_dir.exists():
        suffix += 1
        run_dir = results / study.name / f"{profile}-{stamp}-{suffix}"
    return run_dir


def find_run_dir(results: Path, study: StudySpec, profile: str, run: str | None) -> Path:
    """The run to resume: ``run`` if given, else the newest run of this study and profile."""
    folder = results / study.name
    if run:
        if not (folder / run / "study.yaml").is_file():
            raise UserError(f"--run: no run '{run}' of study {study.name} in {folder}")
        return folder / run
    runs = sorted(p.parent for p in folder.glob(f"{profile}-*/study.yaml")) if folder.is_dir() else []
    if not runs:
        raise UserError(f"--resume: no run of study {study.name} (profile {profile}) in {folder} to resume")
    return runs[-1]


def _check_same_study(run_dir: Path, resolved: dict[str, Any]) -> None:
    """Resuming with a different study (other --set values, an edited file) would mix two studies."""
    stored = read_study(run_dir)
    for key in sorted(set(stored) | set(resolved)):
        if key != "source" and json.dumps(stored.get(key), sort_keys=True) != json.dumps(
            resolved.get(key), sort_keys=True, default=str
        ):
            raise UserError(
                f"{run_dir / 'study.yaml'}: field '{key}' differs from the study given now; "
                "resume with the same study file, profile and --set values"
            )


# Plan


def images_per_epoch(study: StudySpec, data: str | None) -> dict[int, int]:
    """Train + validation images each arm's recipe goes through per epoch (needs the data)."""
    if data is None:
        return {}
    from tinyab.data import open_dataset
    from tinyab.data.arrays import select_subset

    counts = {}
    with open_dataset(data) as source:
        for index, arm in enumerate(study.arms()):
            recipe = study.recipe_for(arm, seed=0)
            subset = select_subset(
                source, recipe.data.classes, recipe.data.train_per_class, recipe.data.val_per_class
            )
            counts[index] = len(subset[0]) + len(subset[2])
    return counts


def plan_lines(
    study: StudySpec,
    profile: str,
    slots: list[TrialSlot],
    todo: list[TrialSlot],
    images: dict[int, int],
    run_dir: Path,
) -> list[str]:
    epochs = {arm: study.recipe_for(values, 0).epochs for arm, values in enumerate(study.arms())}
    total_images = sum(epochs[s.arm] * images[s.arm] for s in todo) if images else None
    arms = study.arms()
    nuisance = ", ".join(study.nuisance) or "none"
    res = study.resources
    scientific = ", ".join(study.scientific) or "no scientific factor"
    concurrency = res.concurrency or "as resources allow"
    lines = [
        f"study {study.name} (profile {profile}): {study.question}",
        f"  arms: {len(arms)} ({scientific}); nuisance: {nuisance}; "
        f"{study.num_samples} configuration(s) per arm x {len(study.seed_list)} seed(s) {study.seed_list}",
        f"  trials: {len(slots)} ({len(slots) - len(todo)} already recorded, {len(todo)} to run); "
        f"epochs per trial: {', '.join(str(e) for e in sorted(set(epochs.values())))}",
        f"  images to process: {total_images:,} (train + validation, all epochs, before pruning)"
        if total_images is not None
        else "  images to process: unknown (no data given)",
        f"  sampler: {study.sampler.name} (seed {study.sampler.seed}); pruner: {study.pruner.name}"
        + (
            f" after {study.pruner.warmup_epochs} warm-up epochs, within each arm"
            if study.pruner.name != "none"
            else ""
        ),
        f"  per trial: {res.cpus:g} CPU, {res.gpus:g} GPU; concurrency: {concurrency}",
        f"  results: {run_dir}",
    ]
    return lines


# The driver


def objective(epochs: list[dict[str, Any]], metric: str, mode: str) -> float | None:
    """The trial's value for Optuna: its best epoch value of the study's metric."""
    values = [
        float(e[metric])
        for e in epochs
        if e.get(metric) not in (None, "") and math.isfinite(float(e[metric]))
    ]
    if not values:
        return None
    return max(values) if mode == "max" else min(values)


class SearchDriver:
    """The driver's state of one session: what is left to start, what runs, what is recorded."""

    def __init__(
        self,
        study: StudySpec,
        todo: list[TrialSlot],
        bridge: OptunaBridge,
        records: RecordsWriter,
        progress: Progress,
        out: Printer,
    ) -> None:
        self.study = study
        self.todo = list(todo)
        self.bridge = bridge
        self.records = records
        self.progress = progress
        self.out = out
        self.rows: list[dict[str, Any]] = []
        self.pruned: set[str] = set()
        self.epochs: dict[str, list[dict[str, Any]]] = {}
        self.started: dict[str, float] = {}
        self.resources = study.resources

    def next_trial(self) -> dict[str, Any] | None:
        """The Tune config of the next planned trial (Optuna is asked now, just in time)."""
        if not self.todo:
            return None
        slot = self.todo.pop(0)
        values = self.bridge.start(slot)
        recipe = self.study.trial_recipe(values, slot.seed)
        try:
            epochs = load_recipe(recipe).epochs
        except ConfigError:
            epochs = 0  # the trial fails with this error on its worker, and is recorded as failed
        return {
            "tinyab": {
                "trial_id": slot.trial_id,
                "arm": slot.arm,
                "seed": slot.seed,
                "values": values,
                "recipe": recipe,
                "epochs": epochs,
                "cpus": self.resources.cpus,
                "gpus": self.resources.gpus,
            }
        }

    def on_start(self, trial_id: str) -> None:
        self.started[trial_id] = time.perf_counter()
        self.epochs[trial_id] = []
        self.progress.running += 1

    def on_epoch(self, info: dict[str, Any], result: dict[str, Any]) -> bool:
        """Record the epoch and report it to Optuna; True when the trial is to be pruned here."""
        trial_id, epoch = info["trial_id"], int(result["epoch"])
        self.epochs.setdefault(trial_id, []).append(result)
        status = self.progress.heartbeat(trial_id, epoch, info["epochs"])
        if status:
            self.out(status)
        value = result.get(self.study.metric)
        if value is None or not math.isfinite(float(value)):
            return False
        prune = self.bridge.report(trial_id, epoch, float(value)) and epoch < info["epochs"]
        if prune:
            self.pruned.add(trial_id)
        return prune

    def mark_pruned(self, trial_id: str) -> None:
        self.pruned.add(trial_id)

    def on_finish(self, info: dict[str, Any], last: dict[str, Any], error: str | None = None) -> None:
        """Record a finished trial (and tell Optuna). A trial stopped by Ctrl-C is not recorded."""
        trial_id = info["trial_id"]
        payload = json.loads(last[RESULT_KEY]) if RESULT_KEY in last else None
        epochs = self.epochs.pop(trial_id, [])
        per_class: list[dict[str, Any]] = []
        if payload is not None:
            status = "pruned" if payload["status"] == "stopped" else payload["status"]
            epochs = payload.get("history") or epochs
            per_class = payload.get("per_class") or []
            error = payload.get("error")
        elif trial_id in self.pruned:
            status = "pruned"
        elif error is not None:
            status = "failed"
        else:
            return  # interrupted: it runs again on --resume
        self.progress.running -= 1
        value = objective(epochs, self.study.metric, self.study.mode)
        row = self._row(info, status, epochs, last, error)
        if payload is not None:  # the engine's own summary is authoritative (e.g. a diverged last epoch)
            row.update({k: payload[k] for k in SUMMARY_KEYS if k in payload})
        self.records.append(row, epochs, per_class)
        self.bridge.finish(trial_id, status, value)
        self.rows.append(row)
        self.progress.seen(row, value)
        self.out(self.progress.line(row, info["values"], value))

    def _row(
        self,
        info: dict[str, Any],
        status: str,
        epochs: list[dict[str, Any]],
        last: dict[str, Any],
        error: str | None,
    ) -> dict[str, Any]:
        scored = [
            (float(e["val_top1"]), int(e["epoch"])) for e in epochs if math.isfinite(float(e["val_top1"]))
        ]
        best = max(scored, key=lambda pair: pair[0]) if scored else (None, None)
        return {
            "trial_id": info["trial_id"],
            "status": status,
            "seed": info["seed"],
            **info["values"],
            "best_val_top1": best[0],
            "final_val_top1": epochs[-1]["val_top1"] if epochs else None,
            "final_train_top1": epochs[-1]["train_top1"] if epochs else None,
            "best_epoch": best[1],
            "epochs_run": len(epochs),
            "wall_seconds": round(
                time.perf_counter() - self.started.pop(info["trial_id"], time.perf_counter()), 3
            ),
            "device": last.get("device", ""),
            "node": last.get("node", ""),
            "error": error,
        }


# Tune adapters


def _tune_adapters(driver: SearchDriver) -> tuple[Any, Any, Any]:
    """The Searcher, scheduler and callback that connect Tune to ``driver`` (Ray imported lazily)."""
    from ray.tune import Callback
    from ray.tune.schedulers import AsyncHyperBandScheduler, FIFOScheduler, TrialScheduler
    from ray.tune.search import Searcher

    study = driver.study

    class _PlanSearcher(Searcher):
        def suggest(self, trial_id: str) -> dict | str | None:
            config = driver.next_trial()
            return config if config is not None else Searcher.FINISHED

        def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
            pass  # the _Recorder callback records; it sees the error text

    class _PruningScheduler(FIFOScheduler):
        _supports_buffered_results = False  # decide after every epoch, before the next one runs

        def __init__(self) -> None:
            super().__init__()
            self.asha: dict[int, Any] = {}

        def _arm_asha(self, trial: Any) -> Any:
            if study.pruner.name != "asha":
                return None
            info = trial.config["tinyab"]
            if info["arm"] not in self.asha:
                self.asha[info["arm"]] = AsyncHyperBandScheduler(
                    time_attr="epoch",
                    metric=study.metric,
                    mode=study.mode,
                    max_t=info["epochs"],
                    grace_period=study.pruner.warmup_epochs + 1,
                    stop_last_trials=False,
                    **study.pruner.options,
                )
            return self.asha[info["arm"]]

        def on_trial_add(self, controller: Any, trial: Any) -> None:
            asha = self._arm_asha(trial)
            if asha is not None:
                asha.on_trial_add(controller, trial)

        def on_trial_result(self, controller: Any, trial: Any, result: dict) -> str:
            if "epoch" not in result:
                return TrialScheduler.CONTINUE
            info = trial.config["tinyab"]
            if driver.on_epoch(info, result):
                return TrialScheduler.STOP
            asha = self._arm_asha(trial)
            if asha is not None and asha.on_trial_result(controller, trial, result) == TrialScheduler.STOP:
                driver.mark_pruned(info["trial_id"])
                return TrialScheduler.STOP
            return TrialScheduler.CONTINUE

        def on_trial_complete(self, controller: Any, trial: Any, result: dict) -> None:
            asha = self._arm_asha(trial)
            if asha is not None:
                asha.on_trial_complete(controller, trial, result)

        def on_trial_remove(self, controller: Any, trial: Any) -> None:
            asha = self._arm_asha(trial)
            if asha is not None:
                asha.on_trial_remove(controller, trial)

    class _Recorder(Callback):
        def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            driver.on_start(trial.config["tinyab"]["trial_id"])

        def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            driver.on_finish(trial.config["tinyab"], dict(trial.last_result or {}))

        def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            error = trial.get_error() or "the trial's worker died"
            text = str(error).strip().splitlines()
            driver.on_finish(
                trial.config["tinyab"], dict(trial.last_result or {}), error=_last_error_line(text)
            )

    return _PlanSearcher(), _PruningScheduler(), _Recorder()


def _last_error_line(lines: list[str]) -> str:
    """Ray's error text ends with the original exception's line; a bare traceback is useless here."""
    for line in reversed(lines):
        if line.strip() and not line.startswith(" "):
            return line.strip()
    return "the trial's worker died"


# Public entry point


def run_search(
    study: StudySpec,
    *,
    profile: str,
    source: str,
    results: str | Path = "results",
    data: str | Path | None = None,
    address: str | None = None,
    dashboard: bool = True,
    dashboard_host: str = "127.0.0.1",
    resume: bool = False,
    run: str | None = None,
    train_fn: Callable[..., Any] | None = None,
    out: Printer = print,
) -> SearchOutcome:
    """Run (or resume) ``study``; records go to ``results/<study>/<run>/``.

    ``train_fn`` defaults to :func:`tinyab.train.engine.train` (same signature); tests inject
    training functions with fixed learning curves. ``data`` is passed to it as ``data=``.
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    _quiet_tune()
    if train_fn is None:
        from tinyab.train.engine import train as train_fn
    data = str(Path(data).expanduser().resolve()) if data is not None else None  # workers have other cwds
    results = Path(results)
    resolved = study.resolved(profile, source)
    slots = plan_trials(study)
    if resume:
        run_dir = find_run_dir(results, study, profile, run)
        _check_same_study(run_dir, resolved)
    else:
        run_dir = results / study.name / run if run else new_run_dir(results, study, profile)
        if run_dir.exists():
            raise UserError(f"--run: {run_dir} already exists; pass --resume to continue it")
    images = images_per_epoch(study, data)
    records = RecordsWriter(run_dir, trial_columns(study.params))
    finished = records.reopen() if resume else {}
    todo = [s for s in slots if s.trial_id not in finished]
    for line in plan_lines(study, profile, slots, todo, images, run_dir):
        out(line)
    with ray_session(address, dashboard=dashboard, dashboard_host=dashboard_host) as ray_info:
        _announce(ray_info, out)
        _check_fits(study, ray_info)
        env = environment({"address": ray_info.address, "resources": ray_info.resources})
        if resume:
            records.write_environment(env)
        else:
            records.create(resolved, env)
        bridge = OptunaBridge(study, run_dir / "optuna.db")
        bridge.reconcile(_outcomes(finished, run_dir, study))
        progress = Progress(len(slots), study.metric, study.mode)
        driver = SearchDriver(study, todo, bridge, records, progress, out)
        earlier = [_typed(row) for row in finished.values()]
        for row in earlier:
            progress.seen(row, row["best_val_top1"])
        try:
            if todo:
                _fit(driver, run_dir, len(todo), train_fn, data)
        finally:
            records.close()
    rows = earlier + driver.rows
    complete = len(rows) == len(slots)
    arm_of = {s.trial_id: s.arm for s in slots}
    for line in ["", *summary_table(rows, study.arms(), arm_of)]:
        out(line)
    for row in rows:
        if row["status"] in ("failed", "diverged"):
            arm = arm_label(study.arms()[arm_of[row["trial_id"]]])
            why = row["error"] or "diverged"
            out(f"{row['status']}: {row['trial_id']} ({arm}, seed {row['seed']}): {why}")
    if not complete:
        out(f"incomplete: {len(slots) - len(rows)} trial(s) not run; continue with --resume")
    out(f"records: {run_dir}")
    out(f"optuna:  optuna-dashboard sqlite:///{(run_dir / 'optuna.db').resolve()}")
    return SearchOutcome(run_dir, rows, complete)


def _quiet_tune() -> None:
    """tinyab prints its own progress and writes its own records: Tune's console output and per-trial
    logs would only repeat them (and Tune then warns that the logs it did not write are missing)."""
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    for name in ("ray.tune.analysis.experiment_analysis", "ray.tune.search.searcher", "ray.tune.tune"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _announce(info: RayInfo, out: Printer) -> None:
    cpus, gpus = info.resources.get("CPU", 0), info.resources.get("GPU", 0)
    where = "local Ray" if info.local else f"Ray at {info.address}"
    out(f"ray: {where}, {cpus:g} CPU, {gpus:g} GPU")
    for note in info.notes:
        out(note)


def _check_fits(study: StudySpec, info: RayInfo) -> None:
    """A trial that asks for more than the cluster has would wait forever: refuse it before starting."""
    res = study.resources
    for field, asked, key in (("cpus", res.cpus, "CPU"), ("gpus", res.gpus, "GPU")):
        have = info.resources.get(key, 0)
        if asked > have:
            raise UserError(
                f"{study.name}: resources.{field}: a trial asks for {asked:g} {key}, the Ray cluster has "
                f"{have:g} (pick another --profile or --set resources.{field}=...)"
            )


def _fit(
    driver: SearchDriver, run_dir: Path, count: int, train_fn: Callable[..., Any], data: str | None
) -> None:
    from ray import tune

    study = driver.study
    searcher, scheduler, recorder = _tune_adapters(driver)
    resources = {"cpu": study.resources.cpus, "gpu": study.resources.gpus}
    trainable = tune.with_resources(tune.with_parameters(run_trial, train_fn=train_fn, data=data), resources)
    session = len(list((run_dir / "tune").glob("session-*"))) + 1 if (run_dir / "tune").is_dir() else 1
    tuner = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            search_alg=searcher,
            scheduler=scheduler,
            num_samples=count,
            max_concurrent_trials=study.resources.concurrency,
            reuse_actors=True,
            trial_name_creator=lambda t: t.config["tinyab"]["trial_id"],
            trial_dirname_creator=lambda t: t.config["tinyab"]["trial_id"],
        ),
        run_config=tune.RunConfig(
            name=f"session-{session}",
            storage_path=str((run_dir / "tune").resolve()),
            verbose=0,
            callbacks=[recorder],
        ),
    )
    tuner.fit()


def _outcomes(
    finished: dict[str, dict[str, str]], run_dir: Path, study: StudySpec
) -> dict[str, dict[str, Any]]:
    """Recorded trials as Optuna outcomes (status and objective value) for reconciliation."""
    if not finished:
        return {}
    import csv

    by_trial: dict[str, list[dict[str, str]]] = {}
    with (run_dir / "epochs.csv").open(newline="") as f:
        for row in csv.DictReader(f):
            by_trial.setdefault(row["trial_id"], []).append(row)
    return {
        trial_id: {
            "status": row["status"],
            "value": objective(by_trial.get(trial_id, []), study.metric, study.mode),
        }
        for trial_id, row in finished.items()
    }


def _typed(row: dict[str, str]) -> dict[str, Any]:
    """A ``trials.csv`` row with numbers as numbers (for the summary)."""
    typed: dict[str, Any] = dict(row)
    for key in ("best_val_top1", "final_val_top1", "final_train_top1", "wall_seconds"):
        typed[key] = float(row[key]) if row.get(key) else None
    return typed
