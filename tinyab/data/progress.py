"""Progress bars on stderr, shown only when asked for and stderr is a terminal (logs stay clean)."""

from __future__ import annotations

import sys
from collections.abc import Iterable

from tqdm import tqdm


def progress_bar(
    iterable: Iterable | None = None, *, total: int | None = None, desc: str, unit: str, show: bool, **kwargs
) -> tqdm:
    # disable=None: tqdm turns itself off when stderr is not a TTY
    return tqdm(
        iterable, total=total, desc=desc, unit=unit, file=sys.stderr, disable=None if show else True, **kwargs
    )
