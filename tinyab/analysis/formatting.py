"""How the report writes values for people: one formatter for tables, verdicts, labels and figures.

CSV files keep full precision; only printed text goes through here, so every view of a number agrees.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def cell(value: Any) -> str:
    """One table cell as text.

    Whole numbers print as integers (a mean of 10.0 epochs as 10); the rest with 4 decimals below 100,
    4 significant digits from 100, none from 1,000, 2 significant digits below 0.001; '—' for missing.
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        v = float(value)
        if v.is_integer():
            return f"{v:,.0f}" if abs(v) >= 1000 else str(int(v))
        if abs(v) < 1e-3:
            return f"{v:.2g}"
        return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.4g}" if abs(v) >= 100 else f"{v:.4f}"
    return str(value)


def level(value: Any) -> str:
    """A factor level as people read it: 5e-05 rather than 5.0000000000000002e-05, 'nan' as '—'.

    Levels are also matched by this text (command-line values, the study's listed order), so it is exact
    to 6 significant digits rather than rounded like :func:`cell`.
    """
    if isinstance(value, float):
        return "—" if math.isnan(value) else f"{value:g}"
    return str(value)


def percent(fraction: float) -> str:
    """A confidence level as a label: 0.9 -> '90%', 0.98333 -> '98.33%'."""
    return f"{round(100 * fraction, 2):g}%"


_QUANTITIES = {
    "val_top1": "validation top-1",
    "val_top5": "validation top-5",
    "train_top1": "training top-1",
    "val_loss": "validation loss",
    "train_loss": "training loss",
    "lr": "learning rate",
    "resolution": "training resolution (px)",
    "epochs_run": "epochs run",
    "wall_seconds": "wall-clock seconds",
    "images_per_s": "images per second",
}


def quantity(name: str) -> str:
    """A records column as an axis label: 'best_val_top1' -> 'best validation top-1'.

    Figures go into papers, where a column name reads as a typo; unknown names lose their underscores.
    """
    for prefix in ("best_", "final_"):
        if name.startswith(prefix) and name.removeprefix(prefix) in _QUANTITIES:
            return f"{prefix[:-1]} {_QUANTITIES[name.removeprefix(prefix)]}"
    return _QUANTITIES.get(name, name.replace("_", " "))
