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
    """``requested`` if given, else CUDA when available, else CPU. On CUDA, cuDNN picks the fastest
    convolution algorithms for each input shape (a run has few: one per phase px and batch size)."""
    if requested is None:
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(requested)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise UserError(f"device '{requested}' requested but CUDA is not available")
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    return device


@functools.cache
def native_bf16_cpu() -> bool:
    """Whether this CPU multiplies bf16 natively (AVX-512 BF16 or AMX): there bf16 inference of a
    small convnet is 2-4× faster than float32; elsewhere bf16 is emulated and slower."""
    cpu = getattr(torch, "cpu", None)
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(cpu, name, lambda: False)()) for name in checks)


def bf16_autocast(precision: str, device: torch.device) -> bool:
    """Whether training or evaluation runs under bf16 autocast: ``bfloat16`` yes, ``float32`` no,
    ``auto`` on CUDA and on CPUs with native bf16. Measured on a 2-core AVX-512 BF16 CPU, small ResNet
    at 32 px, one thread: a training step of 64 images 68 ms instead of 103 ms, evaluation of 500
    images 0.11 s instead of 0.41 s."""
    if precision == "auto":
        return device.type == "cuda" or (device.type == "cpu" and native_bf16_cpu())
    return precision == "bfloat16"


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
