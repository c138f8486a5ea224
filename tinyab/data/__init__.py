"""Tiny ImageNet: layout reader (zip or folder), download, uint8 cache, device batches and augmentation.

The names below are imported from their modules on first use: a study's driver reads the layout and
downloads without importing torch (seconds of a short search), which only the arrays and batches need.
"""

from __future__ import annotations

import importlib
from typing import Any

_HOMES = {
    "DatasetArrays": "arrays",
    "load_arrays": "arrays",
    "Batch": "batches",
    "eval_batches": "batches",
    "train_batches": "batches",
    "OFFICIAL_URL": "download",
    "ensure_dataset": "download",
    "DatasetInfo": "info",
    "dataset_info": "info",
    "TinyImageNetSource": "layout",
    "open_dataset": "layout",
    "default_cache_dir": "locate",
    "default_dataset_dir": "locate",
    "resolve_data_path": "locate",
    "tinyab_home": "locate",
}
__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'tinyab.data' has no attribute {name!r}")
    return getattr(importlib.import_module(f"tinyab.data.{_HOMES[name]}"), name)
