"""The driver of one session of a run: what is left to start, what runs, what is recorded. No Ray here.

The Tune backend (:mod:`tinyab.study.tune_backend`) calls these methods from Tune's searcher, scheduler
and callback; tests call them directly. A search prunes like this: every epoch a worker reports reaches
:meth:`Driver.on_epoch`, which reports it to the arm's Optuna trial and answers whether the arm's
pruner stops the trial; the backend's Tune scheduler then stops it. The epoch stream is the only
history of a trial: its record is summarised from the epochs the driver received.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from tinyab.config import load_recipe
from tinyab.errors import ConfigError
from tinyab.records import RecordsWriter, Status, TrialRecord
from tinyab.study.growth import SeedGrowth
from tinyab.study.plan import StudyPlan, TrialSlot
from tinyab.study.progress import Progress

Printer = Callable[[str], None]


@dataclass(frozen=True)
class TrialTask:
    """What a worker needs to run one trial (and what the driver needs to record it)."""

    trial_id: str
    arm: int
    seed: int
    values: dict[str, Any]  # the trial's values of the records' parameter columns
    recipe: dict[str, Any]  # the recipe mapping, validated on the worker
    epochs: int
    cpus: float
    gpus: float


@dataclass(frozen=True)
class TrialOutcome:
    """What a worker reports once its training function returns (or raises)."""

    status: Literal["completed", "stopped", "diverged", "failed"]
    per_class: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None


class Monitor(Protocol):
    """A live view of the run (:mod:`tinyab.study.monitors`): sees every epoch and every outcome."""

    def epoch(self, task: TrialTask, metrics: Mapping[str, Any]) -> None: ...

    def finished(self, task: TrialTask, record: TrialRecord) -> None: ...

    def close(self) -> None: ...


class Tuner(Protocol):
    """The Optuna side of the driver (:class:`tinyab.study.optuna_bridge.OptunaBridge`)."""

    def start(self, slot: TrialSlot) -> dict[str, Any]: ...

    def report(self, trial_id: str, epoch: int, value: float, judged: bool) -> bool: ...

    def finish(self, trial_id: str, status: Status, value: float | None) -> None: ...


class Driver:
    """Hands out the planned trials just in time, relays epochs to Optuna, records finished trials, and
    (with ``growth``) grows the plan when a batch ends with comparisons still open."""

    def __init__(
        self,
        plan: StudyPlan,
        earlier: list[TrialRecord],
        tuner: Tuner,
        records: RecordsWriter,
        progress: Progress,
        out: Printer,
        growth: SeedGrowth | None = None,
        monitors: Sequence[Monitor] = (),
    ) -> None:
        self.plan = plan
        self.earlier = list(earlier)
        done = {r.trial_id for r in earlier}
        self.todo = [s for s in plan.slots() if s.trial_id not in done]
        self.tuner = tuner
        self.records = records
        self.progress = progress
        self.out = out
        self.growth = growth
        self.monitors = list(monitors)
        self.recorded: list[TrialRecord] = []
        self.pruned = {r.trial_id for r in earlier if r.status == "pruned"}
        self.epochs: dict[str, list[dict[str, Any]]] = {}
        self.started: dict[str, float] = {}
        self.attempts: dict[str, int] = {}

    @property
    def finished(self) -> bool:
        """Nothing left to start, nothing running (and the plan will not grow again)."""
        return not self.todo and self.progress.running == 0

    def next_trial(self) -> TrialTask | None:
        """The next planned trial (Optuna is asked for its nuisance values now); None when nothing can
        start yet (the rest of a batch runs) or ever (:attr:`finished`). A trial whose configuration
        was pruned is recorded pruned without running."""
        while self.todo:
            task = self._task(self.todo.pop(0))
            if not self._configuration_pruned(task.trial_id):
                return task
            self.on_start(task)
            self.pruned.add(task.trial_id)
            judge = self.plan.judged_by[task.trial_id]
            self.out(
                self.progress.stamp(
                    f"{task.trial_id} not run: its configuration's first seed {judge} was pruned"
                )
            )
            self.on_finish(task, None, {})
        return None

    def judges(self, trial_id: str) -> bool:
        """Whether the pruner judges this trial (else it shares the fate of its configuration's first
        seed: :attr:`StudyPlan.judged_by`)."""
        return self.plan.judged_by[trial_id] == trial_id

    def _configuration_pruned(self, trial_id: str) -> bool:
        judge = self.plan.judged_by[trial_id]
        return judge != trial_id and judge in self.pruned

    def _task(self, slot: TrialSlot) -> TrialTask:
        nuisance = self.tuner.start(slot)
        arm = self.plan.arms[slot.arm]
        recipe = arm.build(nuisance, slot.seed)
        try:
            epochs = load_recipe(recipe).epochs
        except ConfigError:
            epochs = 0  # the trial fails with this error on its worker, and is recorded as failed
        resources = self.plan.resources
        values = {**arm.label, **nuisance}
        return TrialTask(
            slot.trial_id, slot.arm, slot.seed, values, recipe, epochs, resources.cpus, resources.gpus
        )

    def on_start(self, task: TrialTask) -> None:
        self.epochs[task.trial_id] = []
        if task.trial_id not in self.started:  # not a retry of a running trial
            self.started[task.trial_id] = time.perf_counter()
            self.progress.running += 1

    def on_retry(self, task: TrialTask, error: str) -> None:
        """The trial failed (it raised, or its worker died) and runs again on a fresh worker: its epoch
        stream starts over; the attempt is counted in its record."""
        self.attempts[task.trial_id] = self.attempts.get(task.trial_id, 1) + 1
        self.epochs[task.trial_id] = []
        self.out(self.progress.stamp(f"{task.trial_id} failed ({error}); retrying on a fresh worker"))

    def on_epoch(self, task: TrialTask, metrics: Mapping[str, Any]) -> bool:
        """Keep the epoch and report it to Optuna; True when the arm's pruner stops the trial here, or
        its configuration's first seed has been pruned meanwhile."""
        epoch = int(metrics["epoch"])
        self.epochs.setdefault(task.trial_id, []).append(dict(metrics))
        for monitor in self.monitors:
            monitor.epoch(task, metrics)
        status = self.progress.heartbeat(task.trial_id, epoch, task.epochs)
        if status:
            self.out(status)
        value = metrics.get(self.plan.pruned_on)
        if value is None or not math.isfinite(float(value)):
            return False
        judged = self.judges(task.trial_id)
        stopped = self.tuner.report(task.trial_id, epoch, float(value), judged)
        prune = (stopped or self._configuration_pruned(task.trial_id)) and epoch < task.epochs
        if prune:
            self.pruned.add(task.trial_id)
        return prune

    def mark_pruned(self, trial_id: str) -> None:
        """A trial stopped by a scheduler other than Optuna's pruner (Ray's ASHA)."""
        self.pruned.add(trial_id)

    def on_finish(
        self,
        task: TrialTask,
        outcome: TrialOutcome | None,
        tags: Mapping[str, Any],
        error: str | None = None,
    ) -> TrialRecord | None:
        """Record a finished trial and tell Optuna. A trial stopped by Ctrl-C is not recorded (None)."""
        status: Status
        per_class: list[dict[str, Any]] = []
        if outcome is not None:
            status = "pruned" if outcome.status == "stopped" else outcome.status
            per_class, error = outcome.per_class, outcome.error
        elif task.trial_id in self.pruned:
            status = "pruned"
        elif error is not None:
            status = "failed"
        else:
            return None  # interrupted: it runs again on --resume
        self.progress.running -= 1
        epochs = self.epochs.pop(task.trial_id, [])
        started = self.started.pop(task.trial_id, time.perf_counter())
        record = TrialRecord.from_epochs(
            task.trial_id,
            status,
            task.seed,
            task.values,
            epochs,
            self.plan.metric,
            wall_seconds=round(time.perf_counter() - started, 3),
            device=str(tags.get("device", "")),
            node=str(tags.get("node", "")),
            error=error,
            attempts=self.attempts.pop(task.trial_id, 1),
        )
        self.records.append(record, epochs, per_class)
        for monitor in self.monitors:
            monitor.finished(task, record)
        self.tuner.finish(task.trial_id, status, record.objective)
        self.recorded.append(record)
        self.progress.seen(record)
        self.out(self.progress.line(record, task.values))
        if self.growth is not None and self.finished:
            self._grow()
        return record

    def _grow(self) -> None:
        """A batch has ended: look at every comparison and plan the next batch for the open ones."""
        assert self.growth is not None
        slots = self.plan.slots()
        look = self.growth.look(self.plan, [*self.earlier, *self.recorded], slots)
        self.out(self.progress.stamp(look.line()))
        grown = self.growth.grow(self.plan, look)
        if grown is not None:
            self.plan = grown
            self.todo = grown.slots()[len(slots) :]
            self.progress.total = len(grown.slots())
