"""One file per decoded subset, keyed by the source file and the subset, written atomically.

The key is the resolved source path with its size and modification time, so a replaced archive is
decoded again. For an extracted folder only the top folder's own size and mtime are seen: after
editing images inside it, delete the cache folder. Files are loaded with ``weights_only=True`` and
memory-mapped, so several training processes share one copy in the page cache.
"""

from __future__ import annotations

import hashlib
import json
import pickle
from pathlib import Path
from typing import Any

import torch

from tinyab.io import atomic_write

FORMAT = 1


def cache_key(source: Path, subset: dict[str, Any]) -> dict[str, Any]:
    resolved = source.resolve()
    stat = resolved.stat()
    return {
        "format": FORMAT,
        "source": str(resolved),
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        **subset,
    }


def cache_file(cache_dir: Path, key: dict[str, Any]) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]
    return cache_dir / f"tinyimagenet-{digest}.pt"


def load_entry(path: Path, key: dict[str, Any]) -> dict[str, Any] | None:
    """The stored entry, or None when there is none or it does not belong to ``key``."""
    if not path.is_file():
        return None
    try:
        entry = torch.load(path, weights_only=True, mmap=True)
    except (RuntimeError, OSError, EOFError, ValueError, pickle.UnpicklingError):
        return None  # unreadable (e.g. written by another torch): decode again and overwrite
    if not isinstance(entry, dict) or entry.get("key") != json.dumps(key, sort_keys=True):
        return None
    return entry


def save_entry(path: Path, key: dict[str, Any], entry: dict[str, Any]) -> None:
    """Write ``entry`` to ``path`` via a temporary file and a rename: readers never see half a file."""
    atomic_write(path, lambda f: torch.save({**entry, "key": json.dumps(key, sort_keys=True)}, f))
