"""Ablation studies (``ablations/*.yaml``): the schema, and its resolution into validated arms.

An ablation names a baseline recipe, the components that may be swapped (each with alternative levels
given as dotted recipe overrides), a design that turns them into arms, seeds shared by every arm and an
optional ``nuisance`` section tuned inside each arm with the same Optuna budget. The file format is
documented in ``docs/ablations.md``. Every mistake a user can make in the file is refused here, as one
line naming the file and the field, before anything runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from tinyab.config import Recipe, load_recipe, read_yaml, recipe_source
from tinyab.errors import ConfigError
from tinyab.schema import deep_merge, field, from_dict, set_dotted, suggest
from tinyab.study.ablation_design import Arm, expand_arms
from tinyab.study.spec import ParamSpec

ABLATIONS_FOLDER = "ablations"
PROFILES = ("smoke", "full")
# Tuning trials run on TUNE_SEED; re-run seeds given as a count start at RERUN_SEED_START ("fresh").
TUNE_SEED = 0
# Arms are compared (and tuned) on each run's best validation top-1, higher is better.
METRIC = "best_val_top1"
RERUN_SEED_START = 1000
# Recipe fields that say nothing about training; two recipes differing only here are the same arm.
_LABEL_FIELDS = ("name", "description", "seed")


def _non_empty(v: Any) -> bool:
    return len(v) > 0


def _valid_level_name(name: str) -> bool:
    return bool(name) and not set(name) & set("=+, ")


@dataclass
class BaselineSpec:
    """The recipe every arm starts from: a named recipe, a YAML file or an inline mapping of fields."""

    recipe: str | dict[str, Any]
    set: dict[str, Any] = field(default_factory=dict)


@dataclass
class Component:
    """One swappable part of the baseline; each alternative level is a set of dotted recipe overrides."""

    alternatives: dict[str, dict[str, Any]] = field(
        check=_non_empty, expect="at least one alternative: {level: {recipe.key: value}}"
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
    levels: dict[str, str] = field(check=_non_empty, expect="at least one component: level")


@dataclass
class Nuisance:
    """A hyperparameter tuned inside every arm, with a search study's distribution (``type``, ``values``
    or ``low``/``high``/``step``). ``key`` is the recipe key it sets (default: the entry's name);
    ``key_when`` maps ``component=level`` to the key it sets instead in arms with that level (e.g. the
    constant-LR arm tunes ``optim.lr`` where the CLR arms tune ``schedule.max_lr``)."""

    type: Literal["choice", "uniform", "loguniform", "int"]
    values: list[Any] | None = None
    low: float | None = None
    high: float | None = None
    step: float | None = field(None, check=lambda v: v > 0, expect="a positive number")
    key: str | None = None
    key_when: dict[str, str] = field(default_factory=dict)

    def param(self) -> ParamSpec:
        """The distribution as the search's ParamSpec (role nuisance), which Optuna samples from."""
        return ParamSpec("nuisance", self.type, self.values, self.low, self.high, self.step)

    def validate(self, where: str) -> None:
        self.param().validate(where)


@dataclass
class Profile:
    """What one profile runs: re-run seeds (a count or a list), the Optuna trials per arm, recipe
    overrides for every arm (e.g. a tiny model for ``smoke``), and per-trial resources."""

    seeds: int | list[int]
    trials_per_arm: int = field(0, check=lambda v: v >= 0, expect="an integer >= 0")
    set: dict[str, Any] = field(default_factory=dict)
    sampler: Literal["tpe", "random"] = "tpe"
    cpus_per_trial: float = field(1.0, check=lambda v: v > 0, expect="a positive number")
    gpus_per_trial: float = field(0.0, check=lambda v: 0 <= v <= 1, expect="a number in [0, 1]")
    max_concurrent: int | None = field(None, check=lambda v: v > 0, expect="a positive integer or null")

    def validate(self, where: str) -> None:
        if isinstance(self.seeds, int) and self.seeds <= 0:
            raise ConfigError(f"{where}.seeds: expected at least one seed, got {self.seeds}")
        if isinstance(self.seeds, list):
            if not self.seeds:
                raise ConfigError(f"{where}.seeds: expected at least one seed, got []")
            if len(set(self.seeds)) != len(self.seeds) or min(self.seeds) < 0:
                raise ConfigError(f"{where}.seeds: expected distinct integers >= 0, got {self.seeds}")

    def rerun_seeds(self) -> list[int]:
        if isinstance(self.seeds, int):
            return list(range(RERUN_SEED_START, RERUN_SEED_START + self.seeds))
        return list(self.seeds)


@dataclass
class AblationFile:
    """The YAML file as written; :func:`load_ablation` resolves it for one profile."""

    name: str
    question: str
    baseline: BaselineSpec
    components: dict[str, Component] = field(check=_non_empty, expect="at least one component")
    profiles: dict[str, Profile] = field(check=_non_empty, expect="at least one profile (smoke, full)")
    design: Literal["one_at_a_time", "full_factorial"] | list[ArmSpec] = "one_at_a_time"
    nuisance: dict[str, Nuisance] = field(default_factory=dict)

    def validate(self, where: str) -> None:
        for name in self.profiles:
            if name not in PROFILES:
                raise ConfigError(
                    f"{where}.profiles.{name}: unknown profile{suggest(name, PROFILES)}; expected smoke, full"
                )


@dataclass(frozen=True)
class Ablation:
    """An ablation resolved for one profile: every arm checked against the recipe schema."""

    name: str
    question: str
    source: str
    profile: str
    design: str  # one_at_a_time | full_factorial | explicit
    base: dict[str, Any]  # the baseline recipe mapping, with the profile's overrides applied
    arms: list[Arm]  # the baseline arm first
    components: dict[str, Component]
    nuisance: dict[str, Nuisance]
    seeds: list[int]  # re-run seeds, shared by every arm
    trials_per_arm: int
    settings: Profile
    metric: str = METRIC
    mode: str = "max"

    @property
    def tune_seed(self) -> int:
        """Every tuning trial of every arm runs on this seed: configurations differ, the seed does not."""
        return TUNE_SEED

    def arm(self, name: str) -> Arm:
        return next(a for a in self.arms if a.name == name)

    def nuisance_key(self, name: str, arm: Arm) -> str:
        """The recipe key nuisance ``name`` sets in ``arm`` (``key_when`` picks it by the arm's levels)."""
        spec = self.nuisance[name]
        for condition, key in spec.key_when.items():
            component, _, level = condition.partition("=")
            if arm.levels.get(component) == level:
                return key
        return spec.key or name

    def trial_mapping(self, arm: Arm, seed: int, nuisance: dict[str, Any] | None = None) -> dict[str, Any]:
        """The recipe mapping of one trial: baseline, arm overrides, nuisance values, seed. Not
        validated here: a sampled value the recipe refuses fails that trial, not the ablation."""
        overrides = dict(arm.overrides)
        for name, value in (nuisance or {}).items():
            overrides[self.nuisance_key(name, arm)] = value
        data = deep_merge(self.base, nested(overrides))
        return {**data, "name": f"{self.name}-{arm.name}", "seed": seed}

    def recipe(self, arm: Arm, seed: int, nuisance: dict[str, Any] | None = None) -> Recipe:
        """The validated recipe of one trial."""
        return load_recipe(self.trial_mapping(arm, seed, nuisance))


def nested(overrides: dict[str, Any]) -> dict[str, Any]:
    """``{"a.b": 1}`` as ``{"a": {"b": 1}}``."""
    tree: dict[str, Any] = {}
    for key, value in overrides.items():
        set_dotted(tree, key, value, key)
    return tree


def build_recipe(base: dict[str, Any], overrides: dict[str, Any]) -> Recipe:
    """``base`` with dotted ``overrides``; a ConfigError names the recipe field (without a file)."""
    try:
        return load_recipe(deep_merge(base, nested(overrides)))
    except ConfigError as err:
        raise ConfigError(str(err).removeprefix("recipe: ")) from None


def ablation_folders() -> list[Path]:
    """Where named ablations live: ``./ablations`` and the one beside the tinyab package (a checkout)."""
    here = Path.cwd() / ABLATIONS_FOLDER
    repo = Path(__file__).resolve().parents[2] / ABLATIONS_FOLDER
    return [here] if here.resolve() == repo else [here, repo]


def ablation_names() -> list[str]:
    return sorted({p.stem for folder in ablation_folders() if folder.is_dir() for p in folder.glob("*.yaml")})


def find_ablation(name_or_path: str) -> Path:
    """The file of a named ablation or a path; an unknown name lists the available ones."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    if name_or_path.endswith((".yaml", ".yml")):
        raise ConfigError(f"{name_or_path}: file not found")
    for folder in ablation_folders():
        if (folder / f"{name_or_path}.yaml").is_file():
            return folder / f"{name_or_path}.yaml"
    names = ablation_names()
    available = ", ".join(names) or "none"
    raise ConfigError(
        f"unknown ablation '{name_or_path}'{suggest(name_or_path, names)}; available: {available}"
    )


def _baseline_mapping(spec: BaselineSpec, folder: Path, label: str) -> dict[str, Any]:
    """The baseline recipe as a plain mapping (named, file relative to the ablation, or inline)."""
    if isinstance(spec.recipe, dict):
        data = dict(spec.recipe)
    else:
        relative = folder / spec.recipe
        try:
            _, data = recipe_source(str(relative) if relative.is_file() else spec.recipe)
        except ConfigError as err:
            raise ConfigError(f"{label}: baseline.recipe: {err}") from None
    return deep_merge(data, nested(spec.set))


def _check(label: str, where: str, base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """The recipe fields of ``base`` + ``overrides`` (minus labels); a bad key names ``where``."""
    try:
        recipe = build_recipe(base, overrides)
    except ConfigError as err:
        raise ConfigError(f"{label}: {where}: {err}") from None
    return {k: v for k, v in recipe.to_dict().items() if k not in _LABEL_FIELDS}


def _arm_field(spec: AblationFile, arm: Arm) -> str:
    """The field of the file that defines ``arm``, for error messages."""
    if isinstance(spec.design, list):
        index = next(i for i, a in enumerate(spec.design) if a.name == arm.name)
        return f"design[{index}]"
    if len(arm.levels) == 1:
        ((component, level),) = arm.levels.items()
        return f"components.{component}.alternatives.{level}"
    return f"design (arm {arm.name})"


def _check_arms(spec: AblationFile, arms: list[Arm], base: dict[str, Any], label: str) -> None:
    """Every arm is a valid recipe, differs from the baseline and from every other arm."""
    baseline = _check(label, "baseline", base, {})
    seen: dict[str, str] = {}
    for arm in arms[1:]:
        where = _arm_field(spec, arm)
        fields = repr(_check(label, where, base, arm.overrides))
        if fields == repr(baseline):
            raise ConfigError(f"{label}: {where}: arm '{arm.name}' is the same recipe as the baseline")
        if fields in seen:
            raise ConfigError(
                f"{label}: {where}: arm '{arm.name}' is the same recipe as arm '{seen[fields]}'"
            )
        seen[fields] = arm.name


def _check_nuisance(spec: AblationFile, base: dict[str, Any], label: str) -> None:
    """Nuisance keys are recipe keys, never ablated, and ``key_when`` names real component levels."""
    ablated = {
        key: f"components.{c}.alternatives.{level}"
        for c, component in spec.components.items()
        for level, overrides in component.alternatives.items()
        for key in overrides
    }
    for name, item in spec.nuisance.items():
        for condition in item.key_when:
            component, _, level = condition.partition("=")
            if component not in spec.components or level not in spec.components[component].alternatives:
                raise ConfigError(
                    f"{label}: nuisance.{name}.key_when.{condition}: expected component=level naming "
                    "an alternative in components"
                )
        for key in {item.key or name, *item.key_when.values()}:
            clash = [k for k in ablated if k == key or k.startswith(f"{key}.") or key.startswith(f"{k}.")]
            if clash:
                raise ConfigError(
                    f"{label}: nuisance.{name}: '{key}' is also ablated ({ablated[clash[0]]}); "
                    "a hyperparameter is either tuned or compared, not both"
                )
            for value in item.param().bounds():
                _check(label, f"nuisance.{name}", base, {key: value})


def _check_profile(spec: AblationFile, profile: Profile, where: str, label: str) -> None:
    if spec.nuisance and profile.trials_per_arm == 0:
        raise ConfigError(
            f"{label}: {where}.trials_per_arm: the nuisance section needs at least 1 trial per arm"
        )
    if not spec.nuisance and profile.trials_per_arm > 0:
        raise ConfigError(
            f"{label}: {where}.trials_per_arm: nothing to tune without a nuisance section; use 0"
        )
    if profile.trials_per_arm and TUNE_SEED in profile.rerun_seeds():
        raise ConfigError(
            f"{label}: {where}.seeds: re-run seeds must be fresh, but seed {TUNE_SEED} is the tuning seed"
        )


def read_ablation_file(path: Path) -> AblationFile:
    try:
        return from_dict(AblationFile, read_yaml(path), "ablation")
    except ConfigError as err:
        message = str(err)
        if message.startswith(f"{path}:"):
            raise
        raise ConfigError(f"{path}: {message.removeprefix('ablation.').removeprefix('ablation: ')}") from None


def resolve(
    spec: AblationFile, path: Path, profile: str, overrides: dict[str, Any] | None = None
) -> Ablation:
    """The ablation for ``profile``: arms expanded and every arm, nuisance key and seed checked.
    ``overrides`` (nested, from ``--set``) apply to every arm after the profile's own."""
    label = str(path)
    if profile not in spec.profiles:
        raise ConfigError(
            f"{label}: profiles: no profile '{profile}'; this ablation has {', '.join(spec.profiles)}"
        )
    settings = spec.profiles[profile]
    base = deep_merge(_baseline_mapping(spec.baseline, path.parent, label), nested(settings.set))
    base = deep_merge(base, overrides or {})
    try:
        arms = expand_arms(spec.components, spec.design)
    except ConfigError as err:
        raise ConfigError(f"{label}: {err}") from None
    _check_arms(spec, arms, base, label)
    _check_nuisance(spec, base, label)
    _check_profile(spec, settings, f"profiles.{profile}", label)
    return Ablation(
        name=spec.name,
        question=spec.question,
        source=label,
        profile=profile,
        design=spec.design if isinstance(spec.design, str) else "explicit",
        base=base,
        arms=arms,
        components=spec.components,
        nuisance=spec.nuisance,
        seeds=settings.rerun_seeds(),
        trials_per_arm=settings.trials_per_arm,
        settings=settings,
    )


def load_ablation(name_or_path: str, profile: str, overrides: dict[str, Any] | None = None) -> Ablation:
    """Read, validate and resolve an ablation for ``profile``; ``overrides`` (nested, from ``--set``)
    apply to every arm's recipe. Every profile of the file is checked, not only the one chosen."""
    path = find_ablation(name_or_path)
    spec = read_ablation_file(path)
    for name in spec.profiles:
        if name != profile:
            resolve(spec, path, name, overrides)
    return resolve(spec, path, profile, overrides)
