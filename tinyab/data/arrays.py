"""The dataset as uint8 tensors, ready to move to the training device: decoded once, then cached.

Subsets are deterministic: the first ``classes`` classes in ``wnids.txt`` order, the first
``train_per_class`` train images of each by numeric index, and the first ``val_per_class`` val
images of each of those classes in val order (``val_<n>`` by ``n``). Labels are 0..classes-1.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from tinyab.data import cache
from tinyab.data.decode import decode_images
from tinyab.data.layout import TinyImageNetSource, open_dataset
from tinyab.data.locate import default_cache_dir
from tinyab.data.subset import select_subset
from tinyab.errors import DataError


@dataclass
class DatasetArrays:
    """Images as uint8 N×64×64×3 (RGB, channels last) with int64 labels."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    wnids: list[str]
    class_names: list[str]


def _decode_subset(
    source: TinyImageNetSource,
    classes: int,
    train_per_class: int | None,
    val_per_class: int | None,
    progress: bool,
) -> dict:
    train_names, train_labels, val_names, val_labels = select_subset(
        source, classes, train_per_class, val_per_class
    )
    train_x = decode_images(train_names, source.read, source.label, desc="decoding train", progress=progress)
    val_x = decode_images(val_names, source.read, source.label, desc="decoding val", progress=progress)
    return {
        "train_x": train_x,
        "train_y": torch.tensor(train_labels, dtype=torch.int64),
        "val_x": val_x,
        "val_y": torch.tensor(val_labels, dtype=torch.int64),
        "wnids": source.wnids[:classes],
        "class_names": source.class_names[:classes],
    }


def load_arrays(
    path: str | Path,
    classes: int = 200,
    train_per_class: int | None = None,
    val_per_class: int | None = None,
    cache_dir: str | Path | None = None,
    progress: bool = True,
) -> DatasetArrays:
    """The subset as tensors; decoded on the first call, read from ``cache_dir`` afterwards.

    ``cache_dir`` defaults to ``$TINYAB_HOME/cache`` (``~/.cache/tinyab/cache``). Nothing is cached when
    decoding fails.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise DataError(f"{path}: not found (expected the Tiny ImageNet .zip or its extracted folder)")
    subset = {"classes": classes, "train_per_class": train_per_class, "val_per_class": val_per_class}
    key = cache.cache_key(path, subset)
    target = cache.cache_file(Path(cache_dir) if cache_dir is not None else default_cache_dir(), key)
    entry = cache.load_entry(target, key)
    if entry is None:
        with open_dataset(path) as source:
            entry = _decode_subset(source, classes, train_per_class, val_per_class, progress)
        cache.save_entry(target, key, entry)
    return DatasetArrays(**{name: entry[name] for name in DatasetArrays.__dataclass_fields__})
