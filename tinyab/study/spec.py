"""The search study: what varies around a recipe, with which role, and how trials are sampled and pruned.

A study file (``search_spaces/<name>.yaml``) names a base recipe, the hyperparameters it varies
(each *scientific* — its effect is the question — or *nuisance* — tuned so the comparison is fair),
the seeds each configuration runs with, the Optuna sampler and pruner, the resources of a trial and
named profiles (partial studies merged over the base). The schema is documented in docs/studies.md.
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
import itertools
import math
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from tinyab.config import Recipe, load_recipe, read_yaml, recipe_source
from tinyab.errors import ConfigError
from tinyab.schema import deep_merge, field, from_dict, set_dotted, suggest, to_dict

EPOCH_METRICS = ["train_loss", "train_top1", "val_loss", "val_top1", "val_top5"]
OPTUNA_PRUNERS = ["median", "percentile", "successive_halving", "hyperband"]
PROFILES = ("smoke", "full")


@dataclass
class ParamSpec:
    """One varied hyperparameter: its role and its distribution (``type`` with values or low/high)."""

    role: Literal["scientific", "nuisance"]
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
        if self.role == "scientific":
            raise ConfigError(
                f"{where}.type: a scientific parameter must be grid or choice (its values define the arms), "
                f"got {self.type}"
            )
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


@dataclass
class SamplerConfig:
    """Optuna's sampler; one per arm, seeded, so nuisance draws start identical in every arm."""

    name: Literal["tpe", "random", "qmc", "cmaes", "grid"] = "tpe"
    seed: int = field(0, check=lambda v: v >= 0, expect="an integer >= 0")
    options: dict[str, Any] = dataclasses.field(default_factory=dict)

    def validate(self, where: str) -> None:
        if self.name == "grid" and self.options:
            raise ConfigError(f"{where}.options: the grid sampler takes no options")
        _check_options(self.name, self.options, f"{where}.options", sampler_class(self.name))


@dataclass
class PrunerConfig:
    """Optuna's pruner (or Ray's ASHA), applied within one arm only and never before ``warmup_epochs``."""

    name: Literal["median", "percentile", "successive_halving", "hyperband", "patient", "asha", "none"] = (
        "none"
    )
    warmup_epochs: int = field(0, check=lambda v: v >= 0, expect="an integer >= 0")
    options: dict[str, Any] = dataclasses.field(default_factory=dict)
    wrapped: Literal["median", "percentile", "successive_halving", "hyperband"] | None = None
    wrapped_options: dict[str, Any] = dataclasses.field(default_factory=dict)

    def validate(self, where: str) -> None:
        if self.name != "patient" and (self.wrapped is not None or self.wrapped_options):
            raise ConfigError(f"{where}.wrapped: only the patient pruner wraps another pruner")
        _check_options(self.name, self.options, f"{where}.options")
        if self.wrapped is not None:
            _check_options(self.wrapped, self.wrapped_options, f"{where}.wrapped_options")


@dataclass
class ResourcesConfig:
    """What one trial gets; ``gpus`` may be a fraction (trials then share a GPU with a memory cap)."""

    cpus: float = field(1.0, check=lambda v: v > 0, expect="a positive number")
    gpus: float = field(
        0.0,
        check=lambda v: v == 0 or 0 < v <= 1 or v == int(v),
        expect="0, a fraction in (0, 1] or a whole number",
    )
    concurrency: int | None = field(
        None, check=lambda v: v >= 1, expect="a positive integer or null (as fit)"
    )


@dataclass
class StudySpec:
    """A search study (one profile applied); see docs/studies.md."""

    name: str
    question: str
    recipe: str | dict[str, Any]
    overrides: dict[str, Any] = dataclasses.field(default_factory=dict)
    params: dict[str, ParamSpec] = dataclasses.field(default_factory=dict)
    metric: str = field(
        "val_top1", check=lambda v: v in EPOCH_METRICS, expect="one of " + ", ".join(EPOCH_METRICS)
    )
    mode: Literal["max", "min"] = "max"
    num_samples: int = field(1, check=lambda v: v >= 1, expect="a positive integer")
    seeds: int | list[int] = field(
        3,
        check=lambda v: (v >= 1) if isinstance(v, int) else (len(v) >= 1 and len(set(v)) == len(v)),
        expect="a positive count or a list of distinct seeds",
    )
    sampler: SamplerConfig = dataclasses.field(default_factory=SamplerConfig)
    pruner: PrunerConfig = dataclasses.field(default_factory=PrunerConfig)
    resources: ResourcesConfig = dataclasses.field(default_factory=ResourcesConfig)
    profiles: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)

    def validate(self, where: str) -> None:
        if not self.question.strip():
            raise ConfigError(f"{where}.question: expected a one-line question")
        for name in self.profiles:
            if name not in PROFILES:
                raise ConfigError(f"{where}.profiles.{name}: unknown profile{suggest(name, PROFILES)}")
        nuisance = [k for k, p in self.params.items() if p.role == "nuisance"]
        if not nuisance and self.num_samples > 1:
            raise ConfigError(
                f"{where}.num_samples: must be 1 when no parameter is nuisance (nothing to sample), "
                f"got {self.num_samples}"
            )
        if self.sampler.name == "grid":
            for key in nuisance:
                if not self.params[key].discrete:
                    raise ConfigError(
                        f"{where}.params.{key}.type: the grid sampler needs grid or choice values"
                    )
            size = math.prod(len(self.params[k].values or []) for k in nuisance)
            if self.num_samples > size:
                raise ConfigError(
                    f"{where}.num_samples: the grid sampler has {size} nuisance configurations, "
                    f"got num_samples {self.num_samples}"
                )

    # Derived views used by the planner and the records.

    @property
    def seed_list(self) -> list[int]:
        return list(range(self.seeds)) if isinstance(self.seeds, int) else list(self.seeds)

    @property
    def scientific(self) -> list[str]:
        return [k for k, p in self.params.items() if p.role == "scientific"]

    @property
    def nuisance(self) -> list[str]:
        return [k for k, p in self.params.items() if p.role == "nuisance"]

    def arms(self) -> list[dict[str, Any]]:
        """Every combination of the scientific values, in file order (one arm if none)."""
        keys = self.scientific
        return [
            dict(zip(keys, combo, strict=True))
            for combo in itertools.product(*(self.params[k].values or [] for k in keys))
        ]

    def base_recipe(self) -> dict[str, Any]:
        """The recipe mapping with the study's overrides applied (not yet the varied values)."""
        data = self.recipe if isinstance(self.recipe, dict) else recipe_source(self.recipe)[1]
        return copy.deepcopy(deep_merge(data, self.overrides))

    def trial_recipe(self, values: dict[str, Any], seed: int) -> dict[str, Any]:
        """The recipe mapping of one trial: base recipe, varied values, seed (not validated yet)."""
        data = self.base_recipe()
        for key, value in values.items():
            set_dotted(data, key, value, f"params.{key}")
        data["seed"] = seed
        return data

    def recipe_for(self, values: dict[str, Any], seed: int) -> Recipe:
        """The recipe of one trial: base recipe, varied values, seed."""
        return load_recipe(self.trial_recipe(values, seed))

    def resolved(self, profile: str, source: str) -> dict[str, Any]:
        """The study as written to ``study.yaml``: every default filled, fixed overrides listed."""
        data = to_dict(self)
        data.pop("profiles")
        fixed = {key: {"role": "fixed", "value": value} for key, value in _flatten(self.overrides).items()}
        params = {key: {k: v for k, v in p.items() if v is not None} for key, p in data["params"].items()}
        return {
            "name": self.name,
            "question": self.question,
            "kind": "search",
            "profile": profile,
            "source": source,
            **{k: v for k, v in data.items() if k not in ("name", "question", "params", "seeds")},
            "seeds": self.seed_list,
            "params": {**params, **fixed},
            "arms": self.arms(),
            "resolved_recipe": load_recipe(self.base_recipe()).to_dict(),
        }


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def sampler_class(name: str) -> Any:
    """Optuna's sampler class for a study's sampler name (``grid`` enumerates, then draws nothing)."""
    import optuna

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
    import optuna

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


def _check_options(name: str, options: dict[str, Any], where: str, cls: Any = None) -> None:
    """Each option must be a keyword argument of the sampler's or pruner's constructor."""
    kind = "sampler" if cls is not None else "pruner"
    params = inspect.signature(cls or pruner_class(name)).parameters
    valid = [p for p in params if p not in _RESERVED_OPTIONS and p != "self"]
    for key in options:
        if key not in valid:
            hint = suggest(key, valid) or (f"; valid: {', '.join(valid)}" if valid else "; it takes none")
            raise ConfigError(f"{where}.{key}: not an option of the {name} {kind}{hint}")
    if name == "percentile" and "percentile" not in options:
        raise ConfigError(f"{where}.percentile: required for the percentile pruner (e.g. 25.0)")
    if name == "patient" and "patience" not in options:
        raise ConfigError(f"{where}.patience: required for the patient pruner (epochs without improvement)")


def _study_keys() -> set[str]:
    return {f.name for f in dataclasses.fields(StudySpec)}


def split_overrides(overrides: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``--set`` values as (study fields, recipe fields): top-level study keys go to the study."""
    study_keys = _study_keys() - {"recipe", "overrides", "profiles", "name", "question"}
    study = {k: v for k, v in overrides.items() if k in study_keys}
    recipe = {k: v for k, v in overrides.items() if k not in study_keys}
    return study, recipe


def build_study(
    raw: Any, source: str, profile: str | None, overrides: dict[str, Any] | None = None
) -> StudySpec:
    """Validate ``raw`` (every profile), then return the study with ``profile`` and ``overrides`` applied.

    ``source`` names the file in every error; ``overrides`` are nested ``--set`` values, applied to the
    study for study fields (``seeds``, ``pruner.name``, ...) and to the recipe otherwise.
    """
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping of study fields")
    base = from_dict(StudySpec, raw, source)
    _check_recipe(base, source)
    for name, partial in base.profiles.items():
        where = f"{source} (profile {name})"
        if not isinstance(partial, dict):
            raise ConfigError(f"{source}.profiles.{name}: expected a mapping of study fields")
        for key in ("name", "profiles"):
            if key in partial:
                raise ConfigError(
                    f"{source}.profiles.{name}.{key}: a profile cannot change the study's {key}"
                )
        _check_recipe(from_dict(StudySpec, deep_merge(raw, partial), where), where)
    data = dict(raw)
    if profile is not None:
        if profile not in base.profiles:
            available = ", ".join(base.profiles) or "none"
            raise ConfigError(f"{source}.profiles: no profile '{profile}' (available: {available})")
        data = deep_merge(data, base.profiles[profile])
    if overrides:
        study_part, recipe_part = split_overrides(overrides)
        data = deep_merge(data, study_part)
        data["overrides"] = deep_merge(data.get("overrides") or {}, recipe_part)
    where = f"{source} (--set)" if overrides else source
    study = from_dict(StudySpec, data, where)
    _check_recipe(study, where)
    return study


def _check_recipe(study: StudySpec, where: str) -> None:
    """The base recipe, and the recipe at every listed value or bound of every param, must be valid."""
    if isinstance(study.recipe, str):
        try:
            recipe_source(study.recipe)
        except ConfigError as err:
            raise ConfigError(f"{where}.recipe: {err}") from None
    base = study.base_recipe()
    try:
        load_recipe(base)
    except ConfigError as err:
        raise ConfigError(f"{where}.overrides: {str(err).removeprefix('recipe: ')}") from None
    varied_overrides = set(_flatten(study.overrides)) & set(study.params)
    if varied_overrides:
        key = sorted(varied_overrides)[0]
        raise ConfigError(
            f"{where}.overrides.{key}: varied by the study (params.{key}); remove one of the two"
        )
    for key, param in study.params.items():
        _check_key(key, f"{where}.params.{key}")
        converted = [_as_recipe_holds(base, key, value, f"{where}.params.{key}") for value in param.bounds()]
        if param.discrete:
            param.values = converted  # e.g. YAML's string "5e-4" becomes the float the recipe holds
            if param.role == "nuisance" and not all(
                isinstance(v, (bool, int, float, str)) for v in converted
            ):
                raise ConfigError(f"{where}.params.{key}.values: a nuisance choice needs scalar values")


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


# Where studies live: the repository's search_spaces/ (and the working directory's, if different).


def spaces_dirs() -> list[Path]:
    repo = Path(__file__).resolve().parents[2] / "search_spaces"
    here = Path.cwd() / "search_spaces"
    return [d for d in dict.fromkeys([here, repo]) if d.is_dir()]


def study_files() -> dict[str, Path]:
    """Shipped studies by name (the working directory's copy wins)."""
    found: dict[str, Path] = {}
    for folder in reversed(spaces_dirs()):
        for path in sorted(folder.glob("*.yaml")):
            found[path.stem] = path
    return dict(sorted(found.items()))


def locate_study(name_or_path: str) -> Path:
    """The file of a study name or path; an unknown name lists the available ones."""
    path = Path(name_or_path)
    if name_or_path.endswith((".yaml", ".yml")) or path.is_file():
        if not path.is_file():
            raise ConfigError(f"{path}: study file not found")
        return path
    files = study_files()
    if name_or_path not in files:
        available = ", ".join(files) or "none"
        raise ConfigError(
            f"unknown study '{name_or_path}'{suggest(name_or_path, files)}; available: {available}"
        )
    return files[name_or_path]


def load_study(
    name_or_path: str, profile: str | None = None, overrides: dict[str, Any] | None = None
) -> StudySpec:
    """Load, validate and resolve a study by name or file."""
    path = locate_study(name_or_path)
    return build_study(read_yaml(path), str(path), profile, overrides)
