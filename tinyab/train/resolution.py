"""Progressive-resizing schedule: the training image size for each epoch.

``phases`` is the recipe's list of ``[epochs, px]``; phase i covers the epochs from the sum of the
earlier phases' lengths up to (not including) that sum plus its own. After the last phase its px
continues, so a run longer than the phases never runs out of schedule.
"""

from __future__ import annotations

from itertools import accumulate, pairwise


def resolution_at(phases: list[list[int]], epoch: int) -> int:
    """The px to train at in 0-based ``epoch``."""
    if not phases:
        raise ValueError("resolution schedule needs at least one [epochs, px] phase")
    for end, (_, px) in zip(accumulate(length for length, _ in phases), phases, strict=True):
        if epoch < end:
            return px
    return phases[-1][1]


def phase_boundaries(phases: list[list[int]]) -> list[int]:
    """The 0-based epochs at which the px changes (the first epoch of each new size).

    Consecutive phases with the same px are no boundary; learning curves are only comparable
    between boundaries, which is why the search's pruner waits past them.
    """
    ends = accumulate(length for length, _ in phases)
    pairs = pairwise(px for _, px in phases)
    return [end for end, (px, nxt) in zip(ends, pairs, strict=False) if px != nxt]
