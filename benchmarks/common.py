"""What the benchmarks share: where the mini Tiny ImageNet archive is, and timing training steps.

Imports nothing beyond tinyab's engine path, so that worker processes of gpu_check.py start fast.
"""

from __future__ import annotations

import argparse
import itertools
import os
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from tinyab.data import Batch
    from tinyab.train.engine import Trainer

DEFAULT_DATA = (
    Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "tiny-imagenet-200-mini.zip"
)


def add_data_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data",
        default=os.environ.get("TINYAB_TEST_DATA", str(DEFAULT_DATA)),
        help="the mini Tiny ImageNet zip (default: $TINYAB_TEST_DATA, else ../shared/data/ next to the repo)",
    )


def timed_steps(trainer: Trainer, batches: Iterable[Batch], steps: int, warmup: int) -> float:
    """Images/s over ``steps`` optimiser steps after ``warmup`` steps, data loading included."""
    trainer.model.train()
    seen = 0
    start = 0.0
    for i, batch in enumerate(batches):
        if i == warmup:
            if trainer.device.type == "cuda":
                torch.cuda.synchronize()
            start, seen = time.perf_counter(), 0
        trainer.train_step(batch)
        seen += batch.labels.numel()
        if i + 1 == warmup + steps:
            break
    if trainer.device.type == "cuda":
        torch.cuda.synchronize()
    return seen / (time.perf_counter() - start)


def tinyab_batches(trainer: Trainer, px: int) -> Iterator[Batch]:
    """tinyab's training batches at ``px``, epoch after epoch, without end."""
    return itertools.chain.from_iterable(trainer.batches(px, augment_on=True) for _ in itertools.count())
