"""The design of an ablation as pure functions: components -> arms -> trials (tuning, then re-runs).

Kept free of Ray, Optuna and files so that what an ablation will run can be computed, printed and
tested before anything runs: the arms × seeds grid with seeds common to all arms, the same tuning
budget in every arm, and the re-runs of each arm's best nuisance values on fresh shared seeds.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from tinyab.errors import ConfigError

BASELINE_ARM = "baseline"
Phase = Literal["tune", "rerun"]


class ComponentLike(Protocol):
    alternatives: dict[str, dict[str, Any]]


class ArmSpecLike(Protocol):
    name: str
    levels: dict[str, str]


@dataclass(frozen=True)
class Arm:
    """One arm: the component levels that differ from the baseline and the recipe overrides they make."""

    name: str
    levels: dict[str, str] = field(default_factory=dict)  # component -> level (baseline: empty)
    overrides: dict[str, Any] = field(default_factory=dict)  # dotted recipe key -> value


@dataclass(frozen=True)
class TrialSpec:
    """One training run of the ablation. Tuning trials get their nuisance values from Optuna."""

    arm: str
    phase: Phase
    seed: int
    nuisance: dict[str, Any] = field(default_factory=dict)


def _combine(components: Mapping[str, ComponentLike], levels: dict[str, str], name: str) -> Arm:
    """The arm with these levels; two components setting the same key in one arm is an error."""
    overrides: dict[str, Any] = {}
    owner: dict[str, str] = {}
    for component, level in levels.items():
        for key, value in components[component].alternatives[level].items():
            if key in owner:
                raise ConfigError(
                    f"design: arm '{name}' combines {owner[key]} and {component}, which both set {key}"
                )
            owner[key] = component
            overrides[key] = value
    return Arm(name, dict(levels), overrides)


def arm_name(levels: dict[str, str]) -> str:
    """``init=xavier`` for one changed component, ``init=xavier+dropout=none`` for several."""
    return "+".join(f"{c}={level}" for c, level in levels.items())


def _explicit(components: Mapping[str, ComponentLike], specs: Iterable[ArmSpecLike]) -> list[Arm]:
    arms: list[Arm] = []
    for i, spec in enumerate(specs):
        if spec.name == BASELINE_ARM or spec.name in {a.name for a in arms}:
            raise ConfigError(
                f"design[{i}].name: '{spec.name}' is used twice (the baseline arm is '{BASELINE_ARM}')"
            )
        for component, level in spec.levels.items():
            if component not in components:
                names = ", ".join(components)
                raise ConfigError(f"design[{i}].levels.{component}: not a component; expected one of {names}")
            if level not in components[component].alternatives:
                raise ConfigError(
                    f"design[{i}].levels.{component}: '{level}' is not an alternative of {component}; "
                    f"expected one of {', '.join(components[component].alternatives)}"
                )
        arms.append(_combine(components, spec.levels, spec.name))
    return arms


def expand_arms(components: Mapping[str, ComponentLike], design: str | Iterable[ArmSpecLike]) -> list[Arm]:
    """The arms of a design, the baseline first.

    ``one_at_a_time``: one arm per alternative level, everything else at the baseline.
    ``full_factorial``: every combination of levels (the baseline's own level included) except the
    baseline itself. A list: the arms it names.
    """
    baseline = Arm(BASELINE_ARM)
    if design == "one_at_a_time":
        arms = [
            _combine(components, {c: level}, arm_name({c: level}))
            for c, component in components.items()
            for level in component.alternatives
        ]
    elif design == "full_factorial":
        choices = [[None, *component.alternatives] for component in components.values()]
        arms = []
        for combo in itertools.product(*choices):
            levels = {c: level for c, level in zip(components, combo, strict=True) if level is not None}
            if levels:
                arms.append(_combine(components, levels, arm_name(levels)))
    elif isinstance(design, str):
        raise ConfigError(f"design: unknown design '{design}'")
    else:
        arms = _explicit(components, design)
    return [baseline, *arms]


def tuning_trials(arms: list[Arm], trials_per_arm: int, seed: int) -> dict[str, list[int]]:
    """The seeds of each arm's tuning trials: the same budget in every arm, all on one seed, so the
    configurations Optuna compares within an arm differ only in their nuisance values."""
    return {arm.name: [seed] * trials_per_arm for arm in arms}


def rerun_trials(arms: list[Arm], seeds: list[int], best: Mapping[str, dict[str, Any]]) -> list[TrialSpec]:
    """Arms × seeds: every arm re-run on the same fresh seeds with its own best nuisance values.

    An arm missing from ``best`` (its tuning produced no completed trial) is left out, never re-run
    with some other arm's values.
    """
    return [
        TrialSpec(arm.name, "rerun", seed, dict(best[arm.name]))
        for arm in arms
        if arm.name in best
        for seed in seeds
    ]


def best_nuisance(
    rows: Iterable[Mapping[str, Any]], names: list[str], metric: str, mode: str
) -> dict[str, dict[str, Any]]:
    """Each arm's best nuisance values among its completed tuning trials (first trial wins ties)."""
    best: dict[str, tuple[float, dict[str, Any]]] = {}
    sign = 1.0 if mode == "max" else -1.0
    for row in rows:
        value = row.get(metric)
        if row.get("phase") != "tune" or row.get("status") != "completed" or value is None:
            continue
        if isinstance(value, float) and math.isnan(value):
            continue
        score = sign * float(value)
        arm = str(row["arm"])
        if arm not in best or score > best[arm][0]:
            best[arm] = (score, {n: row[n] for n in names})
    return {arm: values for arm, (_, values) in best.items()}
