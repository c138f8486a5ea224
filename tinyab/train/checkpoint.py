"""Checkpoints: written atomically, read back with ``weights_only=True`` (no pickled code)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from tinyab.errors import UserError
from tinyab.io import atomic_write


def save_checkpoint(state: dict[str, Any], path: Path) -> None:
    atomic_write(path, lambda f: torch.save(state, f))


def load_checkpoint(path: Path, device: torch.device) -> dict[str, Any]:
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except Exception as err:  # a truncated or foreign file: say which one
        raise UserError(f"{path}: cannot read checkpoint ({type(err).__name__}: {err})") from None
