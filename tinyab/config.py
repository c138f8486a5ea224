"""The recipe: one complete training configuration, loaded from YAML with field-level validation.

A recipe is a named YAML file shipped in ``tinyab/recipes/`` or a user's own file. ``--set a.b=v``
overrides any field. Every field has a default, so a recipe file lists only what differs.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml

from tinyab.errors import ConfigError
from tinyab.schema import deep_merge, field, from_dict, set_dotted, suggest, to_dict


def _positive(v: float) -> bool:
    return v > 0


def _non_negative(v: float) -> bool:
    return v >= 0


def _fraction(v: float) -> bool:
    return 0 <= v < 1


# Tiny ImageNet's train split has 500 images per class: the most a recipe can train on per class.
TRAIN_IMAGES_PER_CLASS = 500


@dataclass
class DataConfig:
    """Which part of Tiny ImageNet to use: deterministic subsets for fast runs."""

    classes: int = field(200, check=lambda v: 2 <= v <= 200, expect="an integer from 2 to 200")
    train_per_class: int | None = field(None, check=_positive, expect="a positive integer or null (all)")
    val_per_class: int | None = field(None, check=_positive, expect="a positive integer or null (all)")

    def most_train_images(self) -> tuple[int, str]:
        """The largest training set this subset can be, and how that number comes about (a dataset
        smaller than Tiny ImageNet's 500 per class gives fewer when ``train_per_class`` is null)."""
        if self.train_per_class is not None:
            return self.classes * self.train_per_class, (
                f"data.classes {self.classes} × data.train_per_class {self.train_per_class}"
            )
        return self.classes * TRAIN_IMAGES_PER_CLASS, (
            f"data.classes {self.classes} × Tiny ImageNet's {TRAIN_IMAGES_PER_CLASS} per class"
        )


@dataclass
class ModelConfig:
    """The network: architecture, stem, width and dropout."""

    arch: Literal["resnet_small", "resnet18", "resnet34", "resnet50", "seed_net1", "seed_net2"] = "resnet18"
    stem: Literal["cifar", "imagenet"] = "imagenet"
    width: float = field(1.0, check=lambda v: 0 < v <= 16, expect="a number in (0, 16]")
    dropout: float = field(0.0, check=_fraction, expect="a number in [0, 1)")
    block_dropout: float = field(0.0, check=_fraction, expect="a number in [0, 1)")


@dataclass
class InitConfig:
    """Weight initialisation of every conv and linear layer; see tinyab.models.init for the formulas."""

    scheme: Literal["variance_scaling", "xavier", "orthogonal", "torch_default"] = "variance_scaling"
    mode: Literal["fan_in", "fan_out", "fan_avg"] = "fan_in"
    distribution: Literal["normal", "truncated_normal", "uniform"] = "truncated_normal"
    scale: float = field(2.0, check=_positive, expect="a positive number")
    zero_init_residual: bool = False


@dataclass
class OptimConfig:
    """Optimiser and weight decay."""

    name: Literal["sgd", "adamw"] = "sgd"
    lr: float = field(0.1, check=lambda v: 0 < v <= 1000, expect="a number in (0, 1000]")
    momentum: float = field(0.9, check=_fraction, expect="a number in [0, 1)")
    nesterov: bool = True
    weight_decay: float = field(5e-4, check=_non_negative, expect="a number >= 0")
    decay_bn_and_bias: bool = False


@dataclass
class ScheduleConfig:
    """Learning-rate schedule. ``optim.lr`` is the peak for one_cycle/cosine/step/constant;
    CLR uses ``base_lr`` and ``max_lr``."""

    name: Literal["constant", "clr", "one_cycle", "cosine", "step"] = "cosine"
    base_lr: float = field(0.001, check=lambda v: 0 < v <= 1000, expect="a number in (0, 1000]")
    max_lr: float = field(0.1, check=lambda v: 0 < v <= 1000, expect="a number in (0, 1000]")
    step_size: float = field(2.0, check=_positive, expect="a positive number")
    step_unit: Literal["epochs", "iterations"] = "epochs"
    mode: Literal["triangular", "triangular2", "exp_range"] = "triangular"
    gamma: float = field(0.99994, check=lambda v: 0 < v <= 1, expect="a number in (0, 1]")
    warmup_epochs: float = field(0.0, check=_non_negative, expect="a number >= 0")
    milestones: list[int] = field(
        default_factory=lambda: [], check=lambda v: all(m > 0 for m in v), expect="a list of positive epochs"
    )
    step_gamma: float = field(0.1, check=lambda v: 0 < v <= 1, expect="a number in (0, 1]")
    pct_start: float = field(0.3, check=lambda v: 0 < v < 1, expect="a number in (0, 1)")

    def validate(self, where: str) -> None:
        if self.name == "clr" and self.base_lr > self.max_lr:
            raise ConfigError(f"{where}.base_lr: must not exceed max_lr ({self.base_lr} > {self.max_lr})")


@dataclass
class AugmentConfig:
    """Batch augmentation on the training device; each part can be switched off."""

    crop: Literal["none", "pad", "random_resized"] = "pad"
    pad: int = field(4, check=lambda v: 0 <= v <= 32, expect="an integer in 0..32 (pixels at 64 px)")
    min_scale: float = field(0.35, check=lambda v: 0 < v <= 1, expect="a number in (0, 1]")
    flip: bool = True
    color_jitter: float = field(0.0, check=lambda v: 0 <= v <= 1, expect="a number in [0, 1]")
    mixup: float = field(0.0, check=_non_negative, expect="a number >= 0 (Beta alpha; 0 = off)")
    cutmix: float = field(0.0, check=_non_negative, expect="a number >= 0 (Beta alpha; 0 = off)")
    label_smoothing: float = field(0.0, check=_fraction, expect="a number in [0, 1)")
    start_epoch: int = field(0, check=_non_negative, expect="an integer >= 0")


def _valid_phases(phases: list) -> bool:
    return all(isinstance(p, list) and len(p) == 2 for p in phases)


def _px(v: int) -> bool:
    return 1 <= v <= 64


@dataclass
class Recipe:
    """One complete training run. ``resolution`` is a list of ``[epochs, px]`` phases; after the
    last phase training continues at its size.

    Evaluation (the whole validation subset, unaugmented): ``eval_px`` is its image size; null means
    the px of the phase just trained, and the last phase's px after the final epoch (so a recipe
    stopped inside an early phase still ends at its target size). ``eval_every`` evaluates after
    every n-th epoch (1-based epochs n, 2n, ...) and always after the final one; an epoch not
    evaluated reports ``None`` for ``val_loss``, ``val_top1``, ``val_top5`` and ``eval_px``, and
    neither the best checkpoint nor a pruner sees it. ``precision`` (training) and ``eval_precision``:
    ``auto`` is bf16 autocast on CUDA and on CPUs with native bf16 (AVX-512 BF16 or AMX), float32
    elsewhere; weights, optimiser state and the loss stay float32.

    ``ema_epochs`` keeps an exponential moving average of the weights and BatchNorm statistics with that
    time constant in epochs, evaluated beside the model as ``val_top1_ema`` and ``val_loss_ema``: the
    average behaves like the model annealed, so a pruner judging it can judge high learning rates before
    their schedule has fallen (docs/studies.md, "Choosing a pruner"). The result stays the model's."""

    name: str = "custom"
    description: str = ""
    epochs: int = field(15, check=_positive, expect="a positive integer")
    batch_size: int = field(128, check=_positive, expect="a positive integer")
    eval_batch_size: int = field(500, check=_positive, expect="a positive integer")
    eval_px: int | None = field(
        None, check=_px, expect="an integer in 1..64, or null (the px of the phase being trained)"
    )
    eval_every: int = field(1, check=_positive, expect="a positive integer (evaluate every n-th epoch)")
    precision: Literal["auto", "float32", "bfloat16"] = "auto"
    eval_precision: Literal["auto", "float32", "bfloat16"] = "auto"
    ema_epochs: float | None = field(
        None, check=lambda v: 0 < v < float("inf"), expect="a positive number of epochs, or null (no average)"
    )
    seed: int = field(0, check=_non_negative, expect="an integer >= 0")
    resolution: list[list[int]] = field(
        default_factory=lambda: [[1, 64]], check=_valid_phases, expect="a list of [epochs, px] pairs"
    )
    compile: bool = False
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    init: InitConfig = dataclasses.field(default_factory=InitConfig)
    optim: OptimConfig = dataclasses.field(default_factory=OptimConfig)
    schedule: ScheduleConfig = dataclasses.field(default_factory=ScheduleConfig)
    augment: AugmentConfig = dataclasses.field(default_factory=AugmentConfig)

    def validate(self, where: str) -> None:
        if not self.resolution:
            raise ConfigError(f"{where}.resolution: expected at least one [epochs, px] phase")
        for i, (epochs, px) in enumerate(self.resolution):
            if epochs <= 0:
                raise ConfigError(f"{where}.resolution[{i}]: a phase needs epochs > 0, got {epochs}")
            if px <= 0 or px > 64:
                raise ConfigError(f"{where}.resolution[{i}]: px must be in 1..64, got {px}")
        most, why = self.data.most_train_images()
        if self.batch_size > most:  # the epoch would drop every image as an incomplete batch
            raise ConfigError(
                f"{where}.batch_size: {self.batch_size} is more than the training set's {most:,} images "
                f"({why}); expected at most {most}"
            )

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)


RECIPES_PACKAGE = "tinyab.recipes"


def recipe_names() -> list[str]:
    """Names of the recipes that ship with tinyab."""
    files = resources.files(RECIPES_PACKAGE).iterdir()
    return sorted(f.name[:-5] for f in files if f.name.endswith(".yaml"))


MAX_YAML_BYTES = 1_000_000  # a study or recipe is a few kB; anything this large is a mistake


class _StrictLoader(yaml.SafeLoader):
    """``yaml.safe_load`` that refuses aliases (a few lines of ``*a`` can expand to gigabytes) and
    duplicate keys (YAML lets the last one win silently)."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.constructor.ConstructorError(
                None, None, "aliases (*name) are not accepted; write the value out", event.start_mark
            )
        return super().compose_node(parent, index)

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        keys = [self.construct_object(key, deep=deep) for key, _ in node.value]
        for key_node, key in zip((k for k, _ in node.value), keys, strict=True):
            if keys.count(key) > 1:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
        return super().construct_mapping(node, deep=deep)


def read_yaml(path: Path | str, text: str | None = None) -> Any:
    """Parse YAML safely; a syntax error, an alias, a duplicate key, a file that is a folder, too
    large or not UTF-8 becomes one line naming the file (and the line)."""
    try:
        if text is None:
            file = Path(path)
            if file.is_file() and file.stat().st_size > MAX_YAML_BYTES:
                raise ConfigError(f"{path}: {file.stat().st_size:,} bytes; a YAML file here is at most 1 MB")
            text = file.read_text(encoding="utf-8")
        return yaml.load(text, Loader=_StrictLoader)  # a SafeLoader: no Python objects
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: a folder, not a YAML file") from None
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not UTF-8 text (byte {err.start})") from None
    except OSError as err:
        raise ConfigError(f"{path}: cannot read ({err.strerror})") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or "invalid YAML"
        raise ConfigError(f"{path}: malformed YAML{at}: {problem}") from None


def parse_overrides(items: list[str], where: str = "--set") -> dict[str, Any]:
    """``["optim.lr=0.05", "augment.flip=false"]`` as a nested mapping; values parsed as YAML."""
    nested: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"{where} {item!r}: expected key=value")
        set_dotted(nested, key.strip(), read_yaml(where, raw), where)
    return nested


def recipe_source(name_or_path: str) -> tuple[str, dict]:
    """The raw mapping of a named recipe or a YAML file, and the label used in errors."""
    path = Path(name_or_path)
    if name_or_path.endswith((".yaml", ".yml")) or path.is_file():
        data = read_yaml(path)
        label = str(path)
        if isinstance(data, dict):
            data.setdefault("name", path.stem)
    elif name_or_path in recipe_names():
        resource = resources.files(RECIPES_PACKAGE) / f"{name_or_path}.yaml"
        label = f"recipe {name_or_path}"
        data = read_yaml(label, resource.read_text())
        if isinstance(data, dict):
            data.setdefault("name", name_or_path)
    else:
        names = recipe_names()
        raise ConfigError(
            f"unknown recipe '{name_or_path}'{suggest(name_or_path, names)}; available: {', '.join(names)}"
        )
    if not isinstance(data, dict):
        raise ConfigError(f"{label}: expected a mapping of recipe fields")
    return label, data


def load_recipe(name_or_path: str | dict, overrides: dict | None = None, seed: int | None = None) -> Recipe:
    """A validated recipe from a name, a file or a mapping, with overrides and seed applied."""
    if isinstance(name_or_path, dict):
        label, data = "recipe", name_or_path
    else:
        label, data = recipe_source(name_or_path)
    if overrides:
        data = deep_merge(data, overrides)
    if seed is not None:
        data = {**data, "seed": seed}
    try:
        return from_dict(Recipe, data, "recipe")
    except ConfigError as err:
        raise ConfigError(f"{label}: {str(err).removeprefix('recipe.')}") from None
