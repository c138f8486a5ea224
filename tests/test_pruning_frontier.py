"""benchmarks/pruning_frontier.py on fixed curves, in a real process: the weight average of
helpers.curves ranks every trial as it ends, so every setting judging it keeps the best trial, while
the model's top-1 (whose late curve trails until the warm-up ends) loses it under the boldest ones."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from test_pruning_audit import write_curves

REPO_ROOT = Path(__file__).resolve().parent.parent


def test_the_frontier_keeps_the_best_on_a_perfect_average_and_names_the_model_metrics_losses(
    tmp_path: Path,
) -> None:
    write_curves(tmp_path / "runs" / "full", {"name": "none"})
    proc = subprocess.run(
        [sys.executable, str(REPO_ROOT / "benchmarks" / "pruning_frontier.py"), str(tmp_path / "runs")],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO_ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    assert "2 samples of 6 trials x 6 epochs" in proc.stdout  # one sample per arm
    rows = [line for line in proc.stdout.splitlines() if re.match(r"\| \d+% \|", line)]
    assert [row.split(" | ")[0] for row in rows] == [f"| {p}%" for p in (25, 30, 35, 40, 45, 50)]
    model, average = zip(*(row.strip("| ").split(" | ")[1:] for row in rows), strict=True)
    reached = [cell for cell in average if cell != "-"]  # "-": no setting saves that much
    assert reached and all(cell.startswith("100% (") for cell in reached), average
    assert any(re.match(r"(\d+)% \(", cell) and not cell.startswith("100%") for cell in model), model
