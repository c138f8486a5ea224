"""What the driver prints: the plan before, one line per finished trial, a summary table at the end."""

from __future__ import annotations

import statistics
import time
from collections import Counter
from typing import Any

from tinyab.study.optuna_bridge import arm_label


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


class Progress:
    """Counts of running / done / pruned / failed trials and the best so far."""

    def __init__(self, total: int, metric: str, mode: str) -> None:
        self.total = total
        self.metric = metric
        self.mode = mode
        self.running = 0
        self.counts: Counter[str] = Counter()
        self.best: tuple[float, str] | None = None
        self.epoch_of: dict[str, str] = {}
        self.last_status = time.monotonic()

    def heartbeat(self, trial_id: str, epoch: int, epochs: int, every: float = 30.0) -> str | None:
        """A status line at most every ``every`` seconds while trials run (long trials stay visible)."""
        self.epoch_of[trial_id] = f"{trial_id} epoch {epoch}/{epochs}"
        now = time.monotonic()
        if now - self.last_status < every:
            return None
        self.last_status = now
        best = f"{self.best[0]:.4f} ({self.best[1]})" if self.best else "-"
        return (
            f"... running {self.running}: {', '.join(self.epoch_of.values())} | completed "
            f"{self.counts['completed']}, pruned {self.counts['pruned']}, failed "
            f"{self.counts['failed'] + self.counts['diverged']} of {self.total} | best {best}"
        )

    def seen(self, row: dict[str, Any], value: float | None) -> None:
        """Count a finished trial (also those finished in an earlier session of the run)."""
        self.counts[row["status"]] += 1
        self.epoch_of.pop(row["trial_id"], None)
        if value is None or row["status"] in ("failed", "diverged"):
            return
        better = self.best is None or (value > self.best[0] if self.mode == "max" else value < self.best[0])
        if better:
            self.best = (value, row["trial_id"])

    def line(self, row: dict[str, Any], values: dict[str, Any], value: float | None) -> str:
        finished = sum(self.counts.values())
        detail = row.get("error") or (
            f"{self.metric} {value:.4f} after {row['epochs_run']} epochs, {row['wall_seconds']:.1f} s"
        )
        params = " ".join(f"{k}={_fmt(v)}" for k, v in values.items())
        best = f"{self.best[0]:.4f} ({self.best[1]})" if self.best else "-"
        return (
            f"[{finished:>{len(str(self.total))}}/{self.total}] {row['trial_id']} {row['status']:<9} "
            f"{params} seed={row['seed']}: {detail} | running {self.running}, "
            f"completed {self.counts['completed']}, pruned {self.counts['pruned']}, "
            f"failed {self.counts['failed'] + self.counts['diverged']} | best {best}"
        )


def summary_table(
    rows: list[dict[str, Any]], arms: list[dict[str, Any]], arm_of: dict[str, int]
) -> list[str]:
    """One line per arm: trials by status; mean, sd and best of best-val-top-1 over completed trials."""
    labels = [arm_label(arm) for arm in arms]
    width = max(3, *(len(label) for label in labels))
    columns = f"{'trials':>6} {'done':>5} {'pruned':>6} {'failed':>6} {'mean':>7} {'sd':>7} {'best':>7}"
    header = f"{'arm':<{width}} {columns}"
    lines = [header, "-" * len(header)]
    for index, label in enumerate(labels):
        mine = [r for r in rows if arm_of.get(r["trial_id"]) == index]
        status = Counter(r["status"] for r in mine)
        scores = [float(r["best_val_top1"]) for r in mine if r["status"] == "completed"]
        mean = f"{statistics.fmean(scores):.4f}" if scores else "-"
        sd = f"{statistics.stdev(scores):.4f}" if len(scores) > 1 else "-"
        best = f"{max(scores):.4f}" if scores else "-"
        lines.append(
            f"{label:<{width}} {len(mine):>6} {status['completed']:>5} {status['pruned']:>6} "
            f"{status['failed'] + status['diverged']:>6} {mean:>7} {sd:>7} {best:>7}"
        )
    return lines
