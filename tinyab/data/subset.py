"""Which images a recipe's ``data`` section selects: the deterministic subset, by name (no decoding and no
torch, so a driver can size a study without importing either)."""

from __future__ import annotations

from tinyab.data.layout import TinyImageNetSource
from tinyab.errors import DataError


def _take(per_class: int | None, available: int, what: str, wnid: str, source: TinyImageNetSource) -> int:
    if per_class is None:
        return available
    if per_class > available:
        raise DataError(f"{source.path}: {what}={per_class}, but class {wnid} has only {available} images")
    return per_class


def select_subset(
    source: TinyImageNetSource, classes: int, train_per_class: int | None, val_per_class: int | None
) -> tuple[list[str], list[int], list[str], list[int]]:
    """Train names and labels, val names and labels of the deterministic subset."""
    if not 1 <= classes <= len(source.wnids):
        raise DataError(f"{source.path}: asked for {classes} classes, the dataset has {len(source.wnids)}")
    train_names, train_labels = [], []
    for c in range(classes):
        n = _take(train_per_class, len(source.train[c]), "train_per_class", source.wnids[c], source)
        train_names += source.train[c][:n]
        train_labels += [c] * n
    by_class: list[list[str]] = [[] for _ in range(classes)]
    for name, c in source.val:
        if c < classes:
            by_class[c].append(name)
    keep = set()
    for c, names in enumerate(by_class):
        keep.update(names[: _take(val_per_class, len(names), "val_per_class", source.wnids[c], source)])
    val = [(name, c) for name, c in source.val if name in keep]
    return train_names, train_labels, [n for n, _ in val], [c for _, c in val]
