"""What a report holds, apart from how it is built (:mod:`.report`) or written (:mod:`.render`).

A module of its own so that the renderer and the builder both import it and never each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd


@dataclass
class Options:
    """What the user asked for on the command line."""

    metric: str | None = None
    by: list[str] | None = None
    baseline: dict[str, str] | None = None
    alpha: float | None = None  # None: the study's (0.05 by default)
    margin: float | None = None  # None: the study's (none by default)
    seed: int = 0
    figures: bool = True


@dataclass
class Table:
    """One table: written whole to ``<key>.csv``, printed without its ``hidden`` columns."""

    key: str  # file stem: arms -> arms.csv
    title: str
    frame: pd.DataFrame
    note: str = ""
    hidden: tuple[str, ...] = ()  # columns kept in the CSV but left out of the printed tables

    @property
    def shown(self) -> pd.DataFrame:
        return self.frame.drop(columns=[c for c in self.hidden if c in self.frame.columns])


@dataclass(frozen=True)
class FigureFile:
    """One saved figure: its stem, caption and its files (PNG for HTML, SVG and PDF for papers)."""

    name: str
    caption: str
    png: Path
    svg: Path
    pdf: Path


@dataclass
class StudyReport:
    """Everything the renderer needs for one study: header, verdicts, tables, notes, figures."""

    name: str
    out_dir: Path
    header: list[str]
    verdicts: list[str]
    tables: list[Table] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    figures: list[FigureFile] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
