"""Progressive-resizing schedule: the training image size for each epoch.

``phases`` is the recipe's list of ``[epochs, px]``; phase i covers the epochs from the sum of the
earlier phases' lengths up to (not including) that sum plus its own. After the last phase its px
continues, so a run longer than the phases never runs out of schedule.
"""

from __future__ import annotations

from itertools import accumulate


def resolution_at(phases: list[list[int]], epoch: int) -> int:
    """The px to train at in 0-based ``epoch``."""
    if not phases:
        raise ValueError("resolution schedule needs at least one [epochs, px] phase")
    for end, (_, px) in zip(accumulate(length for length, _ in phases), phases, strict=True):
        if epoch < end:
            return px
    return phases[-1][1]
