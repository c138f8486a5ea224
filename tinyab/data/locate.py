"""Where tinyab keeps its files, and where the dataset is: ``--data``, ``$TINYAB_DATA``, or the download."""

from __future__ import annotations

import os
from pathlib import Path

from tinyab.errors import DataError

DATASET_FOLDER = "tiny-imagenet-200"


def tinyab_home() -> Path:
    """``$TINYAB_HOME``, else ``~/.cache/tinyab``: downloads and the decoded-array cache live here."""
    home = os.environ.get("TINYAB_HOME")
    return Path(home).expanduser() if home else Path.home() / ".cache" / "tinyab"


def default_cache_dir() -> Path:
    return tinyab_home() / "cache"


def default_dataset_dir() -> Path:
    """Where ``tinyab data download`` puts the extracted dataset."""
    return tinyab_home() / DATASET_FOLDER


def resolve_data_path(path: str | Path | None) -> Path:
    """The dataset to use: ``path``, else ``$TINYAB_DATA``, else the downloaded copy, else DataError."""
    for given, origin in ((path, ""), (os.environ.get("TINYAB_DATA"), " (from $TINYAB_DATA)")):
        if given:
            resolved = Path(given).expanduser()
            if not resolved.exists():
                raise DataError(f"{resolved}: dataset not found{origin}")
            return resolved
    downloaded = default_dataset_dir()
    if downloaded.is_dir():
        return downloaded
    raise DataError(
        f"no dataset: run 'tinyab data download' (to {downloaded}), pass --data PATH, or set $TINYAB_DATA"
    )
