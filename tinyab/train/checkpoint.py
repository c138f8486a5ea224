"""Checkpoints: written atomically, read back with ``weights_only=True`` (no pickled code)."""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path
from typing import Any

import torch

from tinyab.errors import UserError
from tinyab.io import atomic_write


def save_checkpoint(state: dict[str, Any], path: Path) -> None:
    atomic_write(path, lambda f: torch.save(state, f))


def load_checkpoint(path: Path, device: torch.device) -> Any:
    """The object in ``path``; a file torch cannot read safely is refused in one line naming it
    (torch's own message is several lines and suggests ``weights_only=False``, which runs its code)."""
    try:
        with warnings.catch_warnings():  # e.g. "unsupported pickle protocol": the error below says it
            warnings.simplefilter("ignore")
            return torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError:
        raise UserError(
            f"{path}: not a checkpoint tinyab can read "
            "(corrupt, or holding more than tensors and plain values)"
        ) from None
    except OSError as err:
        raise UserError(f"{path}: cannot read checkpoint ({err.strerror or err})") from None
    except Exception as err:  # a truncated file: torch's zip reader or the unpickler ran out of bytes
        why = type(err).__name__
        raise UserError(f"{path}: cannot read checkpoint, truncated or corrupt ({why})") from None
