"""Plain CSV access shared by the writer and the reader (no pandas: training workers import it)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any


def complete_lines(data: bytes) -> bytes:
    """``data`` without a last line that a kill left unterminated."""
    return data if not data or data.endswith(b"\n") else data[: data.rfind(b"\n") + 1]


def read_rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """A CSV file's header and rows as text."""
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


def _cell(value: Any) -> Any:
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value)
    return "" if value is None else value


def csv_text(columns: list[str], rows: Iterable[Mapping[str, Any]], header: bool = False) -> str:
    """CSV lines of ``rows`` in ``columns`` order (other keys ignored), optionally with the header."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    if header:
        writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row.get(c)) for c in columns])
    return out.getvalue()
