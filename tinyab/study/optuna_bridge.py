"""Optuna inside the driver: one Optuna study per arm, asked for nuisance values and told every epoch.

Ray Tune's OptunaSearch hard-codes Optuna's NopPruner, so tinyab drives Optuna itself with ask/tell.
Each arm (a combination of scientific values) has its own Optuna study in the run's ``optuna.db``:
its sampler tunes the nuisance parameters for that arm only, and its pruner compares a trial only
with trials of the same arm. Every seed of a configuration is its own Optuna trial (the same
parameters, enqueued), tagged with tinyab's trial id, configuration index and seed.
"""

from __future__ import annotations

import itertools
import random
from pathlib import Path
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from tinyab.study.plan import TrialSlot
from tinyab.study.spec import ParamSpec, PrunerConfig, SamplerConfig, StudySpec, pruner_class, sampler_class

TRIAL_ATTR, CONFIG_ATTR, SEED_ATTR = "tinyab_trial", "tinyab_config", "tinyab_seed"

# Optuna states of tinyab's statuses; a diverged trial has no usable value.
STATES = {
    "completed": TrialState.COMPLETE,
    "pruned": TrialState.PRUNED,
    "failed": TrialState.FAIL,
    "diverged": TrialState.FAIL,
}


def distribution(param: ParamSpec) -> BaseDistribution:
    if param.discrete:
        return CategoricalDistribution(param.values or [])
    assert param.low is not None and param.high is not None
    if param.type == "int":
        return IntDistribution(int(param.low), int(param.high), step=int(param.step or 1))
    return FloatDistribution(param.low, param.high, log=param.type == "loguniform", step=param.step)


def build_sampler(config: SamplerConfig, offset: int) -> optuna.samplers.BaseSampler:
    """The study's sampler, seeded with ``seed + offset`` (the arm's trials so far: a resumed run
    continues the stream instead of repeating it)."""
    options = dict(config.options)
    if config.name == "qmc":
        options.setdefault("scramble", True)
    return sampler_class(config.name)(seed=config.seed + offset, **options)


def build_pruner(config: PrunerConfig) -> optuna.pruners.BasePruner:
    """Optuna's pruner for the study (NopPruner for ``none`` and for Ray's ``asha``)."""
    if config.name in ("none", "asha"):
        return optuna.pruners.NopPruner()
    if config.name == "patient":
        inner = pruner_class(config.wrapped)(**config.wrapped_options) if config.wrapped else None
        return optuna.pruners.PatientPruner(inner, **config.options)
    return pruner_class(config.name)(**config.options)


def arm_label(arm: dict[str, Any]) -> str:
    return ", ".join(f"{key}={value}" for key, value in arm.items()) or "all"


def grid_points(study: StudySpec) -> list[dict[str, Any]]:
    """The nuisance grid in a seeded random order (the ``grid`` sampler runs its first num_samples)."""
    keys = study.nuisance
    points = [
        dict(zip(keys, combo, strict=True))
        for combo in itertools.product(*(study.params[k].values or [] for k in keys))
    ]
    random.Random(study.sampler.seed).shuffle(points)
    return points


class OptunaBridge:
    """Asks Optuna for each trial's nuisance values, reports its epochs, prunes, and tells the outcome."""

    def __init__(self, study: StudySpec, db_path: Path) -> None:
        self.spec = study
        self.arms = study.arms()
        self.distributions = {key: distribution(study.params[key]) for key in study.nuisance}
        self.grid = grid_points(study) if study.sampler.name == "grid" else None
        self.prunes = study.pruner.name not in ("none", "asha")
        storage = optuna.storages.RDBStorage(f"sqlite:///{db_path}")
        direction = "maximize" if study.mode == "max" else "minimize"
        self.studies = []
        for index, arm in enumerate(self.arms):
            arm_study = optuna.create_study(
                storage=storage,
                study_name=f"{study.name} [{index}] {arm_label(arm)}",
                direction=direction,
                pruner=build_pruner(study.pruner),
                load_if_exists=True,
            )
            arm_study.sampler = build_sampler(study.sampler, len(arm_study.get_trials(deepcopy=False)))
            arm_study.set_user_attr("arm", arm)
            arm_study.set_user_attr("question", study.question)
            self.studies.append(arm_study)
        self.live: dict[str, optuna.Trial] = {}
        self.config_params: dict[tuple[int, int], dict[str, Any]] = {}

    def reconcile(self, finished: dict[str, dict[str, Any]]) -> None:
        """Make the SQLite studies agree with the records after a kill or Ctrl-C.

        ``finished`` maps trial ids to ``{"status", "value"}`` from ``trials.csv``. A trial Optuna still
        holds as running is told its recorded outcome, or FAIL if it never finished (it runs again as a
        new Optuna trial). Parameters already drawn for a configuration are kept for its other seeds.
        """
        for arm, arm_study in enumerate(self.studies):
            while arm_study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
                arm_study.tell(arm_study.ask(), state=TrialState.FAIL)  # enqueued by a killed driver
            for trial in arm_study.get_trials(deepcopy=False):
                if CONFIG_ATTR in trial.user_attrs:
                    self.config_params.setdefault((arm, trial.user_attrs[CONFIG_ATTR]), dict(trial.params))
                if trial.state != TrialState.RUNNING:
                    continue
                record = finished.get(trial.user_attrs.get(TRIAL_ATTR, ""))
                if record is None:
                    arm_study.tell(trial.number, state=TrialState.FAIL)
                else:
                    self._tell(arm_study, trial.number, record["status"], record.get("value"))

    def start(self, slot: TrialSlot) -> dict[str, Any]:
        """Create the Optuna trial of ``slot``; return its values of every varied parameter."""
        arm_study = self.studies[slot.arm]
        attrs = {TRIAL_ATTR: slot.trial_id, CONFIG_ATTR: slot.config, SEED_ATTR: slot.seed}
        params = self.config_params.get((slot.arm, slot.config))
        if params is None and self.grid is not None:
            params = self.grid[slot.config]
        if params is not None:
            arm_study.enqueue_trial(params, user_attrs=attrs)
            trial = arm_study.ask(self.distributions)
        else:
            trial = arm_study.ask(self.distributions)
            for key, value in attrs.items():
                trial.set_user_attr(key, value)
        self.config_params[(slot.arm, slot.config)] = dict(trial.params)
        self.live[slot.trial_id] = trial
        return {**self.arms[slot.arm], **trial.params}

    def report(self, trial_id: str, epoch: int, value: float) -> bool:
        """Report one epoch; True when the arm's pruner says stop (never within the warm-up)."""
        trial = self.live[trial_id]
        trial.report(value, epoch)
        return self.prunes and epoch > self.spec.pruner.warmup_epochs and trial.should_prune()

    def finish(self, trial_id: str, status: str, value: float | None) -> None:
        trial = self.live.pop(trial_id, None)
        if trial is not None:
            self._tell(trial.study, trial.number, status, value)

    @staticmethod
    def _tell(study: optuna.Study, number: int, status: str, value: Any) -> None:
        state = STATES[status]
        if state == TrialState.COMPLETE:
            study.tell(number, float(value))
        else:
            study.tell(number, state=state)  # PRUNED takes the last reported value
