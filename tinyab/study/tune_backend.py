"""Ray Tune as the driver's backend: the trainable that runs on workers and the adapters around it.

- :func:`run_trial` (the function trainable) trains one trial on a Ray worker. It reports every epoch
  to Tune and, once training returns, a final report with the :class:`TrialOutcome`. An exception in
  training becomes a ``failed`` outcome with its first line, so the actor stays reusable.
- :class:`PlanSearcher` (a Tune Searcher) hands out the driver's planned trials.
- :class:`PruningScheduler` (a Tune scheduler) passes each epoch to the driver and stops the trial
  when the arm's Optuna pruner (or, for ``pruner: asha``, the arm's own ASHA) says so. A function
  trainable waits at each report until the scheduler has decided, so a pruned trial stops right there.
- :class:`Recorder` (a Tune callback) hands finished trials to the driver, which records them.

Everything the records hold comes from the driver, not from Tune's folders.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ray import tune
from ray.tune import Callback
from ray.tune.schedulers import AsyncHyperBandScheduler, FIFOScheduler, TrialScheduler
from ray.tune.search import Searcher

from tinyab.errors import UserError
from tinyab.study.driver import Driver, TrialOutcome, TrialTask
from tinyab.study.progress import short_values

OUTCOME_KEY = "tinyab_outcome"
TUNE_FOLDER = "ray_tune"  # Tune's own files in the run folder (tinyab never reads them back)


def first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0]}" if text else type(err).__name__


def where_am_i() -> str:
    """This worker's node: IP and a short node id (two nodes on one machine share the IP)."""
    import ray

    node_id = ray.get_runtime_context().get_node_id()
    return f"{ray.util.get_node_ip_address()}/{node_id[:8]}"


def setup_torch(cpus: float, gpus: float) -> str:
    """Threads = CPUs of the trial (Ray sets OMP_NUM_THREADS=1); cap CUDA memory at a GPU fraction."""
    import torch

    torch.set_num_threads(max(1, int(cpus)))
    if gpus <= 0 or not torch.cuda.is_available():
        return "cpu"
    if gpus < 1:
        torch.cuda.set_per_process_memory_fraction(gpus, 0)
    return "cuda"


def trial_label(task: TrialTask) -> str:
    """``t0003 scheme=xavier weight_decay=0.0005 seed=1``: how a worker's log names its trial."""
    return f"{task.trial_id} {short_values(task.values)} seed={task.seed}"


def run_trial(config: dict[str, Any], train_fn: Callable[..., Any] | None, data: str | None) -> None:
    """Tune's function trainable (``config["task"]`` is the trial the driver planned).

    A Ray actor runs several trials in turn (Tune's ``reuse_actors`` saves a process start and the
    torch import per trial), and Ray names an actor once, at creation; so the actor's log, which the
    Ray dashboard shows on the actor's page, says which trial (id, arm, seed) it runs and when.
    ``train_fn`` None is :func:`tinyab.train.engine.train`, imported here: the driver never needs torch.
    """
    from tinyab.config import load_recipe

    if train_fn is None:
        from tinyab.train.engine import train as train_fn

    task: TrialTask = config["task"]
    tags = {"node": where_am_i(), "device": setup_torch(task.cpus, task.gpus)}
    print(f"tinyab trial {trial_label(task)}: started on {tags['node']} ({tags['device']})", flush=True)

    def on_epoch(metrics: dict[str, Any]) -> None:
        tune.report({**metrics, **tags})

    try:
        result = train_fn(
            load_recipe(task.recipe), on_epoch, data=data, device=tags["device"], progress=False
        )
        outcome = TrialOutcome(result.status, result.per_class)
    except UserError as err:  # a recipe the schema refuses: trying again cannot help
        outcome = TrialOutcome("failed", error=first_line(err))
    except Exception as err:  # say why, then let Tune retry the trial on a fresh worker
        failed = TrialOutcome("failed", error=first_line(err))
        tune.report({OUTCOME_KEY: json.dumps(asdict(failed), default=float), **tags})
        print(f"tinyab trial {trial_label(task)}: {failed.error}", flush=True)
        raise
    print(f"tinyab trial {trial_label(task)}: {outcome.status}", flush=True)
    tune.report({OUTCOME_KEY: json.dumps(asdict(outcome), default=float), **tags})


class _DriverHeld:
    """Tune pickles its searcher, scheduler and callbacks into ``tuner.pkl`` for a restore of its own,
    which tinyab never uses (it resumes from its records). The driver (open record files, the output
    function, Optuna's storage) stays out of that pickle."""

    def __getstate__(self) -> dict[str, Any]:
        return {key: value for key, value in self.__dict__.items() if key != "driver"}


class PlanSearcher(_DriverHeld, Searcher):
    """Suggests the driver's next planned trial until the plan is exhausted."""

    def __init__(self, driver: Driver) -> None:
        super().__init__()
        self.driver = driver

    def suggest(self, trial_id: str) -> dict | str | None:
        task = self.driver.next_trial()
        if task is not None:
            return {"task": task}
        return Searcher.FINISHED if self.driver.finished else None  # None: ask again when a trial ends

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        pass  # the Recorder callback records; it sees the error text


class PruningScheduler(_DriverHeld, FIFOScheduler):
    """Asks the driver after every epoch whether to stop; with ``pruner: asha``, each arm's ASHA too."""

    _supports_buffered_results = False  # decide after every epoch, before the next one runs

    def __init__(self, driver: Driver) -> None:
        super().__init__()
        self.driver = driver
        self.asha: dict[int, AsyncHyperBandScheduler] = {}

    def _arm_asha(self, trial: Any) -> AsyncHyperBandScheduler | None:
        plan = self.driver.plan
        if plan.pruner.name != "asha":
            return None
        task: TrialTask = trial.config["task"]
        if task.arm not in self.asha:
            self.asha[task.arm] = AsyncHyperBandScheduler(
                time_attr="epoch",
                metric=plan.pruned_on,
                mode=plan.mode,
                max_t=task.epochs,
                grace_period=plan.pruner.warmup_epochs + 1,
                stop_last_trials=False,
                **plan.pruner.options,
            )
        return self.asha[task.arm]

    def on_trial_add(self, controller: Any, trial: Any) -> None:
        if (asha := self._arm_asha(trial)) is not None:
            asha.on_trial_add(controller, trial)

    def on_trial_result(self, controller: Any, trial: Any, result: dict) -> str:
        if "epoch" not in result:
            return TrialScheduler.CONTINUE
        task: TrialTask = trial.config["task"]
        if self.driver.on_epoch(task, result):
            return TrialScheduler.STOP
        if result.get(self.driver.plan.pruned_on) is None:  # an epoch not evaluated (eval_every)
            return TrialScheduler.CONTINUE
        asha = None if not self.driver.judges(task.trial_id) else self._arm_asha(trial)
        if asha is not None and asha.on_trial_result(controller, trial, result) == TrialScheduler.STOP:
            self.driver.mark_pruned(task.trial_id)
            return TrialScheduler.STOP
        return TrialScheduler.CONTINUE

    def on_trial_complete(self, controller: Any, trial: Any, result: dict) -> None:
        if (asha := self._arm_asha(trial)) is not None:
            asha.on_trial_complete(controller, trial, result)

    def on_trial_remove(self, controller: Any, trial: Any) -> None:
        if (asha := self._arm_asha(trial)) is not None:
            asha.on_trial_remove(controller, trial)


class Recorder(_DriverHeld, Callback):
    """Hands every finished trial to the driver, with its outcome or its error."""

    def __init__(self, driver: Driver) -> None:
        self.driver = driver

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.driver.on_start(trial.config["task"])

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        last = dict(trial.last_result or {})
        outcome = TrialOutcome(**json.loads(last[OUTCOME_KEY])) if OUTCOME_KEY in last else None
        self.driver.on_finish(trial.config["task"], outcome, last)

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.driver.on_retry(trial.config["task"], _error(trial))

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.driver.on_finish(trial.config["task"], None, dict(trial.last_result or {}), _error(trial))


def _error(trial: Any) -> str:
    """Why a trial failed: the first line its trainable reported, else the end of Ray's error text
    (a worker that died reports nothing)."""
    last = dict(trial.last_result or {})
    if OUTCOME_KEY in last:
        error = json.loads(last[OUTCOME_KEY]).get("error")
        if error:
            return str(error)
    return _last_error_line(str(trial.get_error() or "the trial's worker died").strip().splitlines())


def _last_error_line(lines: list[str]) -> str:
    """Ray's error text ends with the original exception's line; a bare traceback is useless here."""
    for line in reversed(lines):
        if line.strip() and not line.startswith(" "):
            return line.strip()
    return "the trial's worker died"


def fit(
    driver: Driver, run_dir: Path, count: int, train_fn: Callable[..., Any] | None, data: str | None
) -> None:
    """Run ``count`` trials of the driver's plan on the connected Ray; returns when all are done."""
    resources = driver.plan.resources
    trainable = tune.with_resources(
        tune.with_parameters(run_trial, train_fn=train_fn, data=data),
        {"cpu": resources.cpus, "gpu": resources.gpus},
    )
    storage = run_dir / TUNE_FOLDER
    session = len(list(storage.glob("session-*"))) + 1 if storage.is_dir() else 1
    tuner = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            search_alg=PlanSearcher(driver),
            scheduler=PruningScheduler(driver),
            num_samples=count,
            max_concurrent_trials=resources.concurrency,
            reuse_actors=True,
            trial_name_creator=lambda t: t.config["task"].trial_id,
            trial_dirname_creator=lambda t: t.config["task"].trial_id,
        ),
        run_config=tune.RunConfig(
            name=f"session-{session}",
            storage_path=str(storage.resolve()),
            verbose=0,
            callbacks=[Recorder(driver)],
            failure_config=tune.FailureConfig(max_failures=driver.plan.record.get("max_failures", 1)),
        ),
    )
    tuner.fit()
