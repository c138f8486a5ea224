"""Study files: one schema for search studies (``search_spaces/``) and ablations (``ablations/``).

Both kinds share one vocabulary: a base ``recipe`` with ``overrides``, the ``metric`` a trial is judged
by, ``seeds`` (a count ``n`` means seeds ``0..n-1``), ``num_samples`` nuisance configurations per arm,
Optuna's ``sampler`` and ``pruner``, per-trial ``resources`` and named ``profiles`` (partial studies
merged over the file). A search study varies ``params`` (each *scientific* — its values are the arms —
or *nuisance* — tuned so the comparison is fair); an ablation swaps ``components`` of the recipe and
tunes its ``nuisance`` section inside every arm. Importing this module imports neither Ray nor Optuna;
the sampler and pruner options are checked against Optuna by the loader (:mod:`tinyab.study.catalog`).
Formats: docs/studies.md and docs/ablations.md.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import math
import re
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

from tinyab.config import Recipe, load_recipe, recipe_source
from tinyab.errors import ConfigError
from tinyab.records import AVERAGE_MODES, OBJECTIVE_MODES, PRUNING_MODES
from tinyab.schema import deep_merge, field, flatten, from_dict, nested, set_dotted, suggest
from tinyab.study.arms import Arm, ArmSpec, Component, check_arms, expand_arms

PROFILES = ("smoke", "full")


def _positive_int(v: int) -> bool:
    return v >= 1


@dataclass(kw_only=True)
class Distribution:
    """The values a hyperparameter takes: listed (``grid``/``choice``) or a range (``low``/``high``)."""

    type: Literal["grid", "choice", "uniform", "loguniform", "int"]
    values: list[Any] | None = None
    low: float | None = None
    high: float | None = None
    step: float | None = field(None, check=lambda v: v > 0, expect="a positive number")

    @property
    def discrete(self) -> bool:
        return self.type in ("grid", "choice")

    def validate(self, where: str) -> None:
        if self.discrete:
            if self.low is not None or self.high is not None or self.step is not None:
                raise ConfigError(f"{where}: type {self.type} takes 'values', not low/high/step")
            if not self.values:
                raise ConfigError(f"{where}.values: expected a non-empty list for type {self.type}")
            if len({repr(v) for v in self.values}) != len(self.values):
                raise ConfigError(f"{where}.values: values must be distinct, got {self.values}")
            return
        if self.values is not None:
            raise ConfigError(f"{where}.values: type {self.type} takes low and high, not values")
        for name in ("low", "high"):
            if getattr(self, name) is None:
                raise ConfigError(f"{where}.{name}: required for type {self.type}")
        assert self.low is not None and self.high is not None
        if self.low >= self.high:
            raise ConfigError(f"{where}.low: must be below high ({self.low} >= {self.high})")
        if self.type == "loguniform" and self.low <= 0:
            raise ConfigError(f"{where}.low: loguniform needs low > 0, got {self.low}")
        if self.type == "int":
            for name in ("low", "high", "step"):
                value = getattr(self, name)
                if value is not None and value != int(value):
                    raise ConfigError(f"{where}.{name}: type int needs an integer, got {value}")
        elif self.step is not None and self.type == "loguniform":
            raise ConfigError(f"{where}.step: loguniform takes no step")

    def bounds(self) -> list[Any]:
        """The values a recipe must accept: every listed value, or both bounds."""
        if self.discrete:
            return list(self.values or [])
        cast = int if self.type == "int" else float
        return [cast(self.low), cast(self.high)]

    def record(self) -> dict[str, Any]:
        """The distribution as ``study.yaml`` states it (unset fields left out)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


@dataclass(kw_only=True)
class ParamSpec(Distribution):
    """A hyperparameter a search study varies: its role and its distribution."""

    role: Literal["scientific", "nuisance"]

    def validate(self, where: str) -> None:
        if self.role == "scientific" and not self.discrete:
            raise ConfigError(
                f"{where}.type: a scientific parameter must be grid or choice (its values define the arms), "
                f"got {self.type}"
            )
        super().validate(where)


@dataclass(kw_only=True)
class Nuisance(Distribution):
    """A hyperparameter an ablation tunes inside every arm. ``key`` is the recipe key it sets (default:
    the entry's name); ``key_when`` maps ``component=level`` to the key it sets instead in arms with
    that level (e.g. the constant-LR arm tunes ``optim.lr`` where the CLR arms tune ``schedule.max_lr``)."""

    type: Literal["choice", "uniform", "loguniform", "int"]
    key: str | None = None
    key_when: dict[str, str] = field(default_factory=dict)


@dataclass
class SamplerConfig:
    """Optuna's sampler; one per arm, seeded, so nuisance draws start identical in every arm."""

    name: Literal["tpe", "random", "qmc", "cmaes", "grid"] = "tpe"
    seed: int = field(0, check=lambda v: v >= 0, expect="an integer >= 0")
    options: dict[str, Any] = field(default_factory=dict)

    def validate(self, where: str) -> None:
        if self.name == "grid" and self.options:
            raise ConfigError(f"{where}.options: the grid sampler takes no options")


PrunerName = Literal["median", "percentile", "successive_halving", "hyperband"]


@dataclass
class PrunerConfig:
    """Optuna's pruner (or Ray's ASHA), applied within one arm only and never before ``warmup_epochs``;
    it judges ``metric`` (default: the study's), e.g. ``val_top1_ema``, the weight average's top-1."""

    name: Literal[PrunerName, "patient", "asha", "none"] = "none"
    warmup_epochs: int = field(0, check=lambda v: v >= 0, expect="an integer >= 0")
    metric: str | None = field(
        None, check=lambda v: v in PRUNING_MODES, expect="one of " + ", ".join(PRUNING_MODES)
    )
    options: dict[str, Any] = field(default_factory=dict)
    wrapped: PrunerName | None = None
    wrapped_options: dict[str, Any] = field(default_factory=dict)

    def validate(self, where: str) -> None:
        if self.name != "patient" and (self.wrapped is not None or self.wrapped_options):
            raise ConfigError(f"{where}.wrapped: only the patient pruner wraps another pruner")


@dataclass
class ResourcesConfig:
    """What one trial gets; ``gpus`` may be a fraction (trials then share a GPU with a memory cap)."""

    cpus: float = field(1.0, check=lambda v: v > 0, expect="a positive number")
    gpus: float = field(
        0.0,
        check=lambda v: v == 0 or 0 < v <= 1 or v == int(v),
        expect="0, a fraction in (0, 1] or a whole number",
    )
    concurrency: int | None = field(None, check=_positive_int, expect="a positive integer or null (as fit)")


@dataclass
class SequentialConfig:
    """Seeds added in batches until every comparison is decisive (docs/report.md, "Sequential seeds")."""

    step: int = field(2, check=_positive_int, expect="a positive integer (seeds added per batch)")
    max_seeds: int = field(20, check=lambda v: v >= 2, expect="an integer >= 2")


@dataclass(kw_only=True)
class StudyFile:
    """The fields every study has, searches and ablations alike."""

    name: str
    question: str
    recipe: str | dict[str, Any]
    overrides: dict[str, Any] = field(default_factory=dict)
    metric: str = field(
        "val_top1", check=lambda v: v in OBJECTIVE_MODES, expect="one of " + ", ".join(OBJECTIVE_MODES)
    )
    mode: Literal["max", "min"] = "max"
    num_samples: int = field(1, check=_positive_int, expect="a positive integer")
    seeds: int | list[int] = field(
        3,
        check=lambda v: (v >= 1) if isinstance(v, int) else (len(v) >= 1 and len(set(v)) == len(v)),
        expect="a positive count or a list of distinct seeds",
    )
    margin: float | None = field(
        None, check=lambda v: 0 < v < math.inf, expect="a positive number in the metric's units (or null)"
    )
    alpha: float = field(0.05, check=lambda v: 0 < v < 0.5, expect="a number in (0, 0.5)")
    power: float = field(0.8, check=lambda v: 0.5 <= v < 1, expect="a number in [0.5, 1)")
    sequential: SequentialConfig | None = None
    max_failures: int = field(
        1, check=lambda v: 0 <= v <= 10, expect="an integer from 0 to 10 (retries of a failed trial)"
    )
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    pruner: PrunerConfig = field(default_factory=PrunerConfig)
    resources: ResourcesConfig = field(default_factory=ResourcesConfig)
    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)

    def validate(self, where: str) -> None:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", self.name) or ".." in self.name:
            raise ConfigError(
                f"{where}.name: expected letters, digits, '_', '-' or '.' (it names the results folder), "
                f"got {self.name!r}"
            )
        if not self.question.strip():
            raise ConfigError(f"{where}.question: expected a one-line question")
        for name in self.profiles:
            if name not in PROFILES:
                raise ConfigError(f"{where}.profiles.{name}: unknown profile{suggest(name, PROFILES)}")
        if OBJECTIVE_MODES[self.metric] != self.mode:
            raise ConfigError(
                f"{where}.mode: {self.metric} is better when {OBJECTIVE_MODES[self.metric]}imised; "
                f"expected {OBJECTIVE_MODES[self.metric]}, got {self.mode}"
            )
        judged = self.pruner.metric
        if judged is not None and PRUNING_MODES[judged] != self.mode:
            raise ConfigError(
                f"{where}.pruner.metric: {judged} is better when {PRUNING_MODES[judged]}imised and the "
                f"study's {self.metric} when {self.mode}imised; expected a metric that is better when "
                f"{self.mode}imised"
            )
        if isinstance(self.seeds, list) and min(self.seeds) < 0:
            raise ConfigError(f"{where}.seeds: expected seeds >= 0, got {self.seeds}")
        if not self.nuisance_names() and self.num_samples > 1:
            raise ConfigError(
                f"{where}.num_samples: must be 1 when nothing is tuned (no nuisance parameter), "
                f"got {self.num_samples}"
            )
        if self.sequential is not None and self.sequential.max_seeds <= len(self.seed_list):
            raise ConfigError(
                f"{where}.sequential.max_seeds: must exceed the {len(self.seed_list)} starting seeds, "
                f"got {self.sequential.max_seeds}"
            )

    @property
    def seed_list(self) -> list[int]:
        return list(range(self.seeds)) if isinstance(self.seeds, int) else list(self.seeds)

    def nuisance_names(self) -> list[str]:
        raise NotImplementedError

    def base_recipe(self) -> dict[str, Any]:
        """The recipe mapping with the study's overrides applied (not yet the varied values)."""
        data = self.recipe if isinstance(self.recipe, dict) else recipe_source(self.recipe)[1]
        return copy.deepcopy(deep_merge(data, self.overrides))

    def check(self, where: str) -> None:
        """Checks against the recipe schema, after profiles and ``--set`` are applied."""
        if isinstance(self.recipe, str):
            try:
                recipe_source(self.recipe)
            except ConfigError as err:
                raise ConfigError(f"{where}.recipe: {err}") from None
        try:
            recipe = load_recipe(self.base_recipe())
        except ConfigError as err:
            raise ConfigError(f"{where}.overrides: {str(err).removeprefix('recipe: ')}") from None
        if self.pruner.metric in AVERAGE_MODES and recipe.ema_epochs is None:
            raise ConfigError(
                f"{where}.pruner.metric: {self.pruner.metric} is the weight average's, and the recipe keeps "
                f"none; expected the recipe's ema_epochs set (e.g. overrides: {{ema_epochs: 1}})"
            )


@dataclass(kw_only=True)
class SearchStudy(StudyFile):
    """A search study: scientific params define the arms, nuisance params are tuned within each."""

    params: dict[str, ParamSpec] = field(default_factory=dict)

    def validate(self, where: str) -> None:
        super().validate(where)
        if self.sequential is not None and self.num_samples > 1:
            raise ConfigError(
                f"{where}.sequential: sequential seeds compare one configuration per arm seed by seed; "
                f"got num_samples {self.num_samples}"
            )
        if self.sampler.name == "grid":
            for key in self.nuisance_names():
                if not self.params[key].discrete:
                    raise ConfigError(
                        f"{where}.params.{key}.type: the grid sampler needs grid or choice values"
                    )
            size = math.prod(len(self.params[k].values or []) for k in self.nuisance_names())
            if self.num_samples > size:
                raise ConfigError(
                    f"{where}.num_samples: the grid sampler has {size} nuisance configurations, "
                    f"got num_samples {self.num_samples}"
                )

    @property
    def scientific(self) -> list[str]:
        return [k for k, p in self.params.items() if p.role == "scientific"]

    def nuisance_names(self) -> list[str]:
        return [k for k, p in self.params.items() if p.role == "nuisance"]

    def arms(self) -> list[dict[str, Any]]:
        """Every combination of the scientific values, in file order (one arm if none)."""
        keys = self.scientific
        return [
            dict(zip(keys, combo, strict=True))
            for combo in itertools.product(*(self.params[k].values or [] for k in keys))
        ]

    def trial_recipe(self, values: dict[str, Any], seed: int) -> dict[str, Any]:
        """The recipe mapping of one trial: base recipe, varied values, seed (not validated yet)."""
        data = self.base_recipe()
        for key, value in values.items():
            set_dotted(data, key, value, f"params.{key}")
        data["seed"] = seed
        return data

    def check(self, where: str) -> None:
        """The recipe at every listed value or bound of every param must be valid."""
        super().check(where)
        base = self.base_recipe()
        varied_overrides = set(flatten(self.overrides)) & set(self.params)
        if varied_overrides:
            key = sorted(varied_overrides)[0]
            raise ConfigError(
                f"{where}.overrides.{key}: varied by the study (params.{key}); remove one of the two"
            )
        for key, param in self.params.items():
            _check_key(key, f"{where}.params.{key}")
            converted = [_as_recipe_holds(base, key, v, f"{where}.params.{key}") for v in param.bounds()]
            if param.discrete:
                param.values = converted  # e.g. YAML's string "5e-4" becomes the float the recipe holds
                if param.role == "nuisance" and not all(
                    isinstance(v, (bool, int, float, str)) for v in converted
                ):
                    raise ConfigError(f"{where}.params.{key}.values: a nuisance choice needs scalar values")


@dataclass(kw_only=True)
class AblationStudy(StudyFile):
    """An ablation: arms swap components of the recipe; every arm is tuned alike (on ``tune_seed``),
    then each arm's best configuration is re-run on the shared ``seeds``."""

    components: dict[str, Component] = field(check=lambda v: len(v) > 0, expect="at least one component")
    design: Literal["one_at_a_time", "full_factorial"] | list[ArmSpec] = "one_at_a_time"
    nuisance: dict[str, Nuisance] = field(default_factory=dict)
    tune_seed: int = field(1000, check=lambda v: v >= 0, expect="an integer >= 0")

    def validate(self, where: str) -> None:
        super().validate(where)
        if self.nuisance and self.tune_seed in self.seed_list:
            raise ConfigError(
                f"{where}.seeds: the compared seeds must be fresh, but seed {self.tune_seed} is the "
                "tuning seed (tune_seed)"
            )

    def nuisance_names(self) -> list[str]:
        return list(self.nuisance)

    @property
    def design_name(self) -> str:
        return self.design if isinstance(self.design, str) else "explicit"

    def arms(self) -> list[Arm]:
        """The arms, the baseline first (checked at load time)."""
        return expand_arms(self.components, self.design)

    def nuisance_key(self, name: str, arm: Arm) -> str:
        """The recipe key nuisance ``name`` sets in ``arm`` (``key_when`` picks it by the arm's levels)."""
        spec = self.nuisance[name]
        for condition, key in spec.key_when.items():
            component, _, level = condition.partition("=")
            if arm.levels.get(component) == level:
                return key
        return spec.key or name

    def trial_recipe(self, arm: Arm, nuisance: dict[str, Any], seed: int) -> dict[str, Any]:
        """The recipe mapping of one trial: baseline, arm overrides, nuisance values, seed. Not
        validated here: a sampled value the recipe refuses fails that trial, not the ablation."""
        overrides = dict(arm.overrides)
        for name, value in nuisance.items():
            overrides[self.nuisance_key(name, arm)] = value
        data = deep_merge(self.base_recipe(), nested(overrides))
        return {**data, "name": f"{self.name}-{arm.name}", "seed": seed}

    def check(self, where: str) -> None:
        super().check(where)
        check_arms(self.components, self.design, self.base_recipe(), where)
        self._check_nuisance(where)

    def _check_nuisance(self, where: str) -> None:
        """Nuisance keys are recipe keys, never ablated, and ``key_when`` names real component levels."""
        ablated = {
            key: f"components.{c}.alternatives.{level}"
            for c, component in self.components.items()
            for level, overrides in component.alternatives.items()
            for key in overrides
        }
        base = self.base_recipe()
        for name, item in self.nuisance.items():
            for condition in item.key_when:
                component, _, level = condition.partition("=")
                if component not in self.components or level not in self.components[component].alternatives:
                    raise ConfigError(
                        f"{where}.nuisance.{name}.key_when.{condition}: expected component=level naming "
                        "an alternative in components"
                    )
            for key in {item.key or name, *item.key_when.values()}:
                clash = [k for k in ablated if k == key or k.startswith(f"{key}.") or key.startswith(f"{k}.")]
                if clash:
                    raise ConfigError(
                        f"{where}.nuisance.{name}: '{key}' is also ablated ({ablated[clash[0]]}); "
                        "a hyperparameter is either tuned or compared, not both"
                    )
                for value in item.bounds():
                    _as_recipe_holds(base, key, value, f"{where}.nuisance.{name}")


Study = TypeVar("Study", SearchStudy, AblationStudy)


def split_overrides(
    cls: type[StudyFile], overrides: dict[str, Any], where: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``--set`` values as (study fields, recipe fields): top-level study keys go to the study. A key
    that is neither is refused with the closest name, the study's first (``seedz`` means ``seeds``,
    not the recipe's ``seed``); the recipe's ``seed`` is the study's to set, through ``seeds``."""
    study_keys = {f.name for f in dataclasses.fields(cls)} - {"recipe", "overrides", "profiles", "name"}
    recipe_keys = {f.name for f in dataclasses.fields(Recipe)}
    for key in overrides:
        if key == "seed":
            raise ConfigError(f"{where}.seed: a study runs its arms on its seeds; set seeds=N or seeds=[...]")
        if key not in study_keys and key not in recipe_keys:
            hint = suggest(key, study_keys) or suggest(key, recipe_keys)
            raise ConfigError(f"{where}.{key}: neither a study nor a recipe field{hint}")
    study = {k: v for k, v in overrides.items() if k in study_keys}
    recipe = {k: v for k, v in overrides.items() if k not in study_keys}
    return study, recipe


def build_study(
    cls: type[Study],
    raw: Any,
    source: Path,
    profile: str | None,
    overrides: dict[str, Any] | None = None,
) -> Study:
    """Validate ``raw`` (the file, and every profile), then return it with ``profile`` and ``overrides``.

    ``source`` is the file: errors name it, and a recipe file named in it is found beside it.
    ``overrides`` are nested ``--set`` values, applied to the study for study fields (``seeds``,
    ``pruner.name``, ...) and to the recipe otherwise.
    """
    label = str(source)
    if not isinstance(raw, dict):
        raise ConfigError(f"{label}: expected a mapping of study fields")
    raw = _recipe_beside(raw, source.parent)
    base = from_dict(cls, raw, label)
    base.check(label)
    for name, partial in base.profiles.items():
        where = f"{label} (profile {name})"
        if not isinstance(partial, dict):
            raise ConfigError(f"{label}.profiles.{name}: expected a mapping of study fields")
        for key in ("name", "profiles"):
            if key in partial:
                raise ConfigError(f"{label}.profiles.{name}.{key}: a profile cannot change the study's {key}")
        from_dict(cls, deep_merge(raw, _recipe_beside(partial, source.parent)), where).check(where)
    data = dict(raw)
    if profile is not None:
        if profile not in base.profiles:
            available = ", ".join(base.profiles) or "none"
            raise ConfigError(f"{label}.profiles: no profile '{profile}' (available: {available})")
        data = deep_merge(data, _recipe_beside(base.profiles[profile], source.parent))
    if overrides:
        study_part, recipe_part = split_overrides(cls, overrides, f"{label} (--set)")
        data = deep_merge(data, study_part)
        data["overrides"] = deep_merge(data.get("overrides") or {}, recipe_part)
    where = f"{label} (--set)" if overrides else label
    study = from_dict(cls, data, where)
    study.check(where)
    return study


def _recipe_beside(data: dict[str, Any], folder: Path) -> dict[str, Any]:
    """A recipe named by a file path relative to the study file is found beside it."""
    recipe = data.get("recipe")
    if isinstance(recipe, str) and (folder / recipe).is_file():
        return {**data, "recipe": str(folder / recipe)}
    return data


def _as_recipe_holds(base: dict[str, Any], key: str, value: Any, where: str) -> Any:
    """``value`` as the recipe stores it at ``key``; a value the recipe refuses is an error here."""
    data = copy.deepcopy(base)
    set_dotted(data, key, value, where)
    try:
        node: Any = load_recipe(data).to_dict()
    except ConfigError as err:
        raise ConfigError(f"{where}: value {value!r} rejected: {str(err).removeprefix('recipe: ')}") from None
    for part in key.split("."):
        node = node[part]
    return node


def _check_key(key: str, where: str) -> None:
    """``key`` must name a scalar field of the Recipe (e.g. ``optim.weight_decay``)."""
    cls: Any = Recipe
    parts = key.split(".")
    valid = _recipe_keys()
    for i, part in enumerate(parts):
        fields = {f.name: f for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else {}
        if part not in fields:
            raise ConfigError(f"{where}: not a recipe field{suggest(key, valid)}")
        cls = typing.get_type_hints(cls)[part]
        if i == len(parts) - 1 and dataclasses.is_dataclass(cls):
            raise ConfigError(f"{where}: '{key}' is a section; vary one of its fields{suggest(key, valid)}")


def _recipe_keys(cls: Any = Recipe, prefix: str = "") -> list[str]:
    keys = []
    for name, hint in typing.get_type_hints(cls).items():
        if dataclasses.is_dataclass(hint):
            keys += _recipe_keys(hint, f"{prefix}{name}.")
        else:
            keys.append(f"{prefix}{name}")
    return keys
