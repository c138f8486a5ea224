"""Shared pieces of the training tests: epoch histories without their timings, two torch threads."""

from __future__ import annotations

import pytest
import torch

VOLATILE = {"seconds", "images_per_s"}


def stable(history: list[dict]) -> list[dict]:
    """Epoch rows without the fields that depend on the machine's speed."""
    return [{k: v for k, v in row.items() if k not in VOLATILE} for row in history]


@pytest.fixture(autouse=True)
def two_threads():
    """Every test of a module that imports this runs on two torch threads, as the engine's own runs do."""
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(previous)
