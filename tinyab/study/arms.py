"""An ablation's arms: its components' alternative levels, combined by a design, checked as recipes.

Pure functions (no Ray, Optuna or files), so what an ablation will run can be computed, printed and
tested before anything runs.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from tinyab.config import load_recipe
from tinyab.errors import ConfigError
from tinyab.schema import deep_merge, field, nested

BASELINE_ARM = "baseline"
# Recipe fields that say nothing about training; two recipes differing only here are the same arm.
_LABEL_FIELDS = ("name", "description", "seed")


def _valid_level_name(name: str) -> bool:
    return bool(name) and not set(name) & set("=+, ")


@dataclass
class Component:
    """One swappable part of the baseline; each alternative level is a set of dotted recipe overrides."""

    alternatives: dict[str, dict[str, Any]] = field(
        check=lambda v: len(v) > 0, expect="at least one alternative: {level: {recipe.key: value}}"
    )
    baseline: str = field("baseline", check=_valid_level_name, expect="a level name without '=+, '")

    def validate(self, where: str) -> None:
        for level, overrides in self.alternatives.items():
            if not _valid_level_name(level):
                raise ConfigError(
                    f"{where}.alternatives.{level}: a level name must not contain '=', '+', ',' or spaces"
                )
            if level == self.baseline:
                raise ConfigError(
                    f"{where}.alternatives.{level}: the baseline's own level is not an alternative"
                )
            if not overrides:
                raise ConfigError(f"{where}.alternatives.{level}: expected at least one recipe.key: value")


@dataclass
class ArmSpec:
    """An arm of an explicit design: the level of each component that differs from the baseline."""

    name: str = field(check=_valid_level_name, expect="an arm name without '=+, '")
    levels: dict[str, str] = field(check=lambda v: len(v) > 0, expect="at least one component: level")


@dataclass(frozen=True)
class Arm:
    """One arm: the component levels that differ from the baseline and the recipe overrides they make."""

    name: str
    levels: dict[str, str] = field(default_factory=dict)  # component -> level (baseline: empty)
    overrides: dict[str, Any] = field(default_factory=dict)  # dotted recipe key -> value


def _combine(components: Mapping[str, Component], levels: dict[str, str], name: str) -> Arm:
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


def _explicit(components: Mapping[str, Component], specs: Iterable[ArmSpec]) -> list[Arm]:
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


def expand_arms(components: Mapping[str, Component], design: str | list[ArmSpec]) -> list[Arm]:
    """The arms of a design, the baseline first.

    ``one_at_a_time``: one arm per alternative level, everything else at the baseline.
    ``full_factorial``: every combination of levels (the baseline's own level included) except the
    baseline itself. A list: the arms it names.
    """
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
    return [Arm(BASELINE_ARM), *arms]


def _arm_field(design: str | list[ArmSpec], arm: Arm) -> str:
    """The field of the file that defines ``arm``, for error messages."""
    if isinstance(design, list):
        index = next(i for i, a in enumerate(design) if a.name == arm.name)
        return f"design[{index}]"
    if len(arm.levels) == 1:
        ((component, level),) = arm.levels.items()
        return f"components.{component}.alternatives.{level}"
    return f"design (arm {arm.name})"


def _training_fields(base: dict[str, Any], overrides: dict[str, Any], where: str) -> str:
    """The recipe of ``base`` + ``overrides`` without its labels, as comparable text."""
    data = deep_merge(base, nested(overrides))
    try:
        recipe = load_recipe(data)
    except ConfigError as err:
        raise ConfigError(f"{where}: {str(err).removeprefix('recipe: ')}") from None
    return repr({k: v for k, v in recipe.to_dict().items() if k not in _LABEL_FIELDS})


def check_arms(
    components: Mapping[str, Component], design: str | list[ArmSpec], base: dict[str, Any], where: str
) -> None:
    """Every arm is a valid recipe, differs from the baseline and from every other arm."""
    try:
        arms = expand_arms(components, design)
    except ConfigError as err:
        raise ConfigError(f"{where}.{err}") from None
    baseline = _training_fields(base, {}, f"{where}.recipe")
    seen: dict[str, str] = {}
    for arm in arms[1:]:
        at = f"{where}.{_arm_field(design, arm)}"
        fields = _training_fields(base, arm.overrides, at)
        if fields == baseline:
            raise ConfigError(f"{at}: arm '{arm.name}' is the same recipe as the baseline")
        if fields in seen:
            raise ConfigError(f"{at}: arm '{arm.name}' is the same recipe as arm '{seen[fields]}'")
        seen[fields] = arm.name
