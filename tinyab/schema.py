"""Turn plain YAML mappings into typed dataclasses, with one-line errors that name the field.

Every configuration object in tinyab (recipe, study, ablation) is a tree of dataclasses. Each field
may carry ``metadata={"check": callable, "expect": "text"}``; the callable returns True for a valid
value and ``expect`` says what was expected. Unknown keys are refused with the closest valid name.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import math
import types
import typing
from collections.abc import Callable
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

from tinyab.errors import ConfigError

T = TypeVar("T")


def field(
    default: Any = dataclasses.MISSING,
    *,
    check: Callable[[Any], bool] | None = None,
    expect: str = "",
    default_factory: Any = dataclasses.MISSING,
) -> Any:
    """A dataclass field with an optional range check used by :func:`from_dict`."""
    metadata = {"check": check, "expect": expect}
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def suggest(name: str, valid: typing.Iterable[str]) -> str:
    """' (did you mean X?)' for the closest valid name, or '' when nothing is close."""
    close = difflib.get_close_matches(name, list(valid), n=1, cutoff=0.5)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in get_args(tp))
    if origin in (list, tuple):
        return "a list"
    if origin is dict:
        return "a mapping"
    if tp is type(None):
        return "null"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false"}.get(
        tp, getattr(tp, "__name__", str(tp))
    )


def _convert(value: Any, tp: Any, where: str) -> Any:
    """Check ``value`` against the annotation ``tp`` and convert it; raise ConfigError if it fails."""
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in get_args(tp):
            return None  # null for an optional section means "none", not a section of defaults
        sections = [a for a in get_args(tp) if dataclasses.is_dataclass(a)]
        if isinstance(value, dict) and len(sections) == 1:
            return from_dict(sections[0], value, where)  # its own field's error, not "expected a mapping"
        for arg in get_args(tp):
            try:
                return _convert(value, arg, where)
            except ConfigError:
                continue
        raise ConfigError(f"{where}: expected {_type_name(tp)}, got {value!r}")
    if origin is Literal:
        if value in get_args(tp):
            return value
        raise ConfigError(
            f"{where}: expected {_type_name(tp)}, got {value!r}{suggest(str(value), map(str, get_args(tp)))}"
        )
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        (item_tp,) = get_args(tp)[:1] or (Any,)
        return [_convert(v, item_tp, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        _, val_tp = get_args(tp) or (Any, Any)
        return {str(k): _convert(v, val_tp, f"{where}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, where)
    if tp is type(None):
        if value is None:
            return None
        raise ConfigError(f"{where}: expected null, got {value!r}")
    if tp is float and isinstance(value, str):  # YAML 1.1 reads "5e-4" as a string
        with contextlib.suppress(ValueError):
            value = float(value)
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if tp is float and isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{where}: expected a finite number, got {value!r}")
    if tp in (bool, int, float, str) and type(value) is tp:
        return value
    raise ConfigError(f"{where}: expected {_type_name(tp)}, got {value!r}")


def from_dict(cls: type[T], data: Any, where: str) -> T:
    """Build dataclass ``cls`` from ``data``; ``where`` prefixes every error (file and field path)."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in data:
        if key not in fields:
            raise ConfigError(f"{where}.{key}: unknown key{suggest(str(key), fields)}")
    kwargs = {}
    for name, f in fields.items():
        if name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError(f"{where}.{name}: required field is missing")
            continue
        value = _convert(data[name], hints[name], f"{where}.{name}")
        check = f.metadata.get("check")
        if check is not None and value is not None and not check(value):
            raise ConfigError(f"{where}.{name}: expected {f.metadata['expect']}, got {value!r}")
        kwargs[name] = value
    obj = cls(**kwargs)
    validate = getattr(obj, "validate", None)
    if validate is not None:
        validate(where)
    return obj


def to_dict(obj: Any) -> Any:
    """A dataclass tree as plain mappings and lists, ready for YAML or JSON."""
    return dataclasses.asdict(obj) if dataclasses.is_dataclass(obj) else obj


def set_dotted(data: dict, key: str, value: Any, where: str) -> None:
    """Set ``a.b.c`` in nested mappings, creating levels as needed."""
    parts = key.split(".")
    node = data
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{where}: cannot set '{key}': '{part}' is not a mapping")
        node = child
    node[parts[-1]] = value


def deep_merge(base: dict, update: dict) -> dict:
    """A new mapping: ``base`` with ``update`` merged in recursively (update wins)."""
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def nested(dotted: dict[str, Any]) -> dict[str, Any]:
    """``{"a.b": 1}`` as ``{"a": {"b": 1}}``."""
    tree: dict[str, Any] = {}
    for key, value in dotted.items():
        set_dotted(tree, key, value, key)
    return tree


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` as ``{"a.b": 1}``."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat
