"""Optuna inside the driver: one Optuna study per arm, asked for nuisance values and told every epoch.

Ray Tune's OptunaSearch hard-codes Optuna's NopPruner, so tinyab drives Optuna itself with ask/tell.
Each arm has its own Optuna study in the run's ``optuna.db``: its sampler tunes the nuisance
parameters for that arm only, and its pruner compares a trial only with trials of the same arm. Every
seed of a configuration is its own Optuna trial (the same parameters, enqueued), tagged with tinyab's
trial id, configuration index and seed. The option checks of a study's sampler and pruner live here,
beside the builders that use the options.
"""

from __future__ import annotations

import inspect
import itertools
import random
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from tinyab.errors import ConfigError, UserError
from tinyab.records import Status, TrialRecord
from tinyab.schema import suggest
from tinyab.study.plan import StudyPlan, TrialSlot
from tinyab.study.spec import Distribution, PrunerConfig, SamplerConfig, StudyFile

TRIAL_ATTR, CONFIG_ATTR, SEED_ATTR = "tinyab_trial", "tinyab_config", "tinyab_seed"

# Optuna states of tinyab's statuses; a diverged trial has no usable value.
STATES = {
    "completed": TrialState.COMPLETE,
    "pruned": TrialState.PRUNED,
    "failed": TrialState.FAIL,
    "diverged": TrialState.FAIL,
}


def sampler_class(name: str) -> Any:
    """Optuna's sampler class for a study's sampler name (``grid`` enumerates, then draws nothing)."""
    return {
        "tpe": optuna.samplers.TPESampler,
        "random": optuna.samplers.RandomSampler,
        "qmc": optuna.samplers.QMCSampler,
        "cmaes": optuna.samplers.CmaEsSampler,
        "grid": optuna.samplers.RandomSampler,
    }[name]


def pruner_class(name: str) -> Any:
    """The constructor whose keyword arguments a pruner's ``options`` are."""
    if name == "asha":
        from ray.tune.schedulers import AsyncHyperBandScheduler

        return AsyncHyperBandScheduler
    return {
        "median": optuna.pruners.MedianPruner,
        "percentile": optuna.pruners.PercentilePruner,
        "successive_halving": optuna.pruners.SuccessiveHalvingPruner,
        "hyperband": optuna.pruners.HyperbandPruner,
        "patient": optuna.pruners.PatientPruner,
        "none": optuna.pruners.NopPruner,
    }[name]


# Arguments tinyab sets itself: the study decides them, not the options.
_RESERVED_OPTIONS = {"wrapped_pruner", "time_attr", "metric", "mode", "max_t", "grace_period", "seed"}


def _check(cls: Any, label: str, options: dict[str, Any], where: str) -> None:
    """Each option must be a keyword argument of the constructor ``cls``."""
    params = inspect.signature(cls).parameters
    valid = [p for p in params if p not in _RESERVED_OPTIONS and p != "self"]
    for key, value in options.items():
        if key not in valid:
            hint = suggest(key, valid) or (f"; valid: {', '.join(valid)}" if valid else "; it takes none")
            raise ConfigError(f"{where}.{key}: not an option of the {label}{hint}")
        default = params[key].default
        kind = type(default) if isinstance(default, (bool, int, float)) else None  # str defaults: sentinels
        numeric = kind in (int, float) and isinstance(value, (int, float)) and not isinstance(value, bool)
        if kind is not None and not isinstance(value, kind) and not (kind is float and numeric):
            raise ConfigError(
                f"{where}.{key}: expected {kind.__name__} like the default {default!r}, got {value!r}"
            )


def _builds(label: str, build: Any, where: str) -> None:
    """Build the object once: a value its constructor refuses is the field's error, before Ray starts."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            build()
    except (ValueError, TypeError, AssertionError) as err:
        why = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError(f"{where}: the {label} refuses these options: {why}") from None


def check_options(study: StudyFile, where: str) -> None:
    """The sampler's and pruner's options name real arguments (and the required ones are given), and
    the objects build with them."""
    sampler, pruner = study.sampler, study.pruner
    _check(
        sampler_class(sampler.name), f"{sampler.name} sampler", sampler.options, f"{where}.sampler.options"
    )
    _check(pruner_class(pruner.name), f"{pruner.name} pruner", pruner.options, f"{where}.pruner.options")
    if pruner.wrapped is not None:
        _check(
            pruner_class(pruner.wrapped), f"{pruner.wrapped} pruner", pruner.wrapped_options,
            f"{where}.pruner.wrapped_options",
        )  # fmt: skip
    if pruner.name == "percentile" and "percentile" not in pruner.options:
        raise ConfigError(
            f"{where}.pruner.options.percentile: required for the percentile pruner (e.g. 25.0)"
        )
    if pruner.name == "patient" and "patience" not in pruner.options:
        raise ConfigError(
            f"{where}.pruner.options.patience: required for the patient pruner (epochs without improvement)"
        )
    _builds(f"{sampler.name} sampler", lambda: build_sampler(sampler, 0), f"{where}.sampler.options")
    if pruner.name == "asha":
        metric = pruner.metric or study.metric
        options = {"time_attr": "epoch", "metric": metric, "mode": study.mode, **pruner.options}
        _builds("asha pruner", lambda: pruner_class("asha")(**options), f"{where}.pruner.options")
    else:
        _builds(f"{pruner.name} pruner", lambda: build_pruner(pruner), f"{where}.pruner.options")


def distribution(param: Distribution) -> BaseDistribution:
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


def grid_points(plan: StudyPlan) -> list[dict[str, Any]]:
    """The nuisance grid in a seeded random order (the ``grid`` sampler runs its first configurations)."""
    keys = list(plan.nuisance)
    points = [
        dict(zip(keys, combo, strict=True))
        for combo in itertools.product(*(plan.nuisance[k].values or [] for k in keys))
    ]
    random.Random(plan.sampler.seed).shuffle(points)
    return points


def open_storage(db_path: Path, study: str) -> optuna.storages.RDBStorage:
    """The run's SQLite storage; a corrupt file, or one holding another study's arms, is refused in one
    line (resuming on it would tell Optuna outcomes of trials it never saw)."""
    from sqlalchemy.exc import SQLAlchemyError

    try:
        storage = optuna.storages.RDBStorage(f"sqlite:///{db_path}")
        names = optuna.get_all_study_names(storage)
    except (SQLAlchemyError, optuna.exceptions.StorageInternalError, ValueError) as err:
        why = str(err).strip().splitlines()[0][:120]
        raise UserError(
            f"{db_path}: not a readable Optuna database ({why}); restore it, or move it away to resume "
            "without Optuna's history"
        ) from None
    foreign = [name for name in names if not name.startswith(f"{study} [")]
    if foreign:
        raise UserError(f"{db_path}: holds Optuna study '{foreign[0]}', not one of study {study}'s arms")
    return storage


class OptunaBridge:
    """Asks Optuna for each trial's nuisance values, reports its epochs, prunes, and tells the outcome."""

    def __init__(self, plan: StudyPlan, db_path: Path) -> None:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.plan = plan
        self.distributions = {key: distribution(param) for key, param in plan.nuisance.items()}
        self.grid = grid_points(plan) if plan.sampler.name == "grid" else None
        self.prunes = plan.pruner.name not in ("none", "asha")
        storage = open_storage(db_path, plan.name)
        direction = "maximize" if plan.mode == "max" else "minimize"
        self.studies = []
        for index, arm in enumerate(plan.arms):
            arm_study = optuna.create_study(
                storage=storage,
                study_name=f"{plan.name} [{index}] {arm.name}",
                direction=direction,
                pruner=build_pruner(plan.pruner),
                load_if_exists=True,
            )
            arm_study.sampler = build_sampler(plan.sampler, len(arm_study.get_trials(deepcopy=False)))
            with warnings.catch_warnings():  # experimental since Optuna 3.2, stable in use
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                arm_study.set_metric_names([plan.metric])
            arm_study.set_user_attr("arm", arm.label)
            arm_study.set_user_attr("intermediate_values", plan.pruned_on)  # what trial.report holds
            arm_study.set_user_attr("question", plan.question)
            self.studies.append(arm_study)
        self.live: dict[str, optuna.Trial] = {}
        self.reported: dict[str, set[int]] = {}
        self.config_params: dict[tuple[int, int], dict[str, Any]] = {}

    def reconcile(self, finished: Mapping[str, TrialRecord]) -> None:
        """Make the SQLite studies agree with the records after a kill or Ctrl-C.

        ``finished`` holds the recorded trials by id. A trial Optuna still holds as running is told its
        recorded outcome, or FAIL if it never finished (it runs again as a new Optuna trial).
        Parameters already drawn for a configuration are kept for its other seeds.
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
                    self._tell(arm_study, trial.number, record.status, record.objective)

    def start(self, slot: TrialSlot) -> dict[str, Any]:
        """Create the Optuna trial of ``slot``; return its nuisance values."""
        arm_study = self.studies[slot.arm]
        # the arm's values as user attributes too, so the dashboard shows them beside each trial (as params
        # they would consume the sampler's random stream and change the nuisance draws)
        attrs = {
            TRIAL_ATTR: slot.trial_id,
            CONFIG_ATTR: slot.config,
            SEED_ATTR: slot.seed,
            **self.plan.arms[slot.arm].label,
        }
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
        return dict(trial.params)

    def report(self, trial_id: str, epoch: int, value: float, judged: bool) -> bool:
        """Report one epoch; True when the trial is ``judged`` and the arm's pruner says stop (never
        within the warm-up). A retried trial's epochs that its failed attempt already reported are not
        reported again."""
        trial = self.live[trial_id]
        reported = self.reported.setdefault(trial_id, set())
        if epoch in reported:
            return False
        reported.add(epoch)
        trial.report(value, epoch)
        return judged and self.prunes and epoch > self.plan.pruner.warmup_epochs and trial.should_prune()

    def finish(self, trial_id: str, status: Status, value: float | None) -> None:
        self.reported.pop(trial_id, None)
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
