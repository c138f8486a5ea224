"""Editing study and ablation mappings for tests: one change per case, the rest left as written."""

from __future__ import annotations

import copy
from typing import Any


def edited(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """``base`` with top-level or ``a/b`` nested changes (a value of None deletes the key)."""
    data = copy.deepcopy(base)
    for path, value in changes.items():
        *parents, last = path.split("/")
        node = data
        for part in parents:
            node = node[part]
        if value is None:
            node.pop(last)
        else:
            node[last] = value
    return data
