"""What a run prints: the plan before, one line per finished trial, a summary table at the end."""

from __future__ import annotations

import statistics
import time
from collections import Counter
from pathlib import Path
from typing import Any

from tinyab.records import TrialRecord
from tinyab.study.plan import StudyPlan, TrialSlot

WIDTH = 120  # progress lines fit a terminal of this width


def _fmt(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def clock(seconds: float) -> str:
    """``1:02:03`` or ``2:03``: elapsed time and ETAs."""
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def short_values(values: dict[str, Any]) -> str:
    """``scheme=xavier weight_decay=5e-05``: the last part of each dotted key (unless two share it)."""
    last = [key.rsplit(".", 1)[-1] for key in values]
    names = [s if last.count(s) == 1 else key for s, key in zip(last, values, strict=True)]
    return " ".join(f"{name}={_fmt(value)}" for name, value in zip(names, values.values(), strict=True))


class Progress:
    """Counts of running / done / pruned / failed trials, the best so far, and the time they took.

    Every line starts with the time since the run started; the heartbeat adds an ETA from the wall
    time of the trials finished in this session and the number running at once.
    """

    def __init__(self, total: int, metric: str, mode: str) -> None:
        self.total = total
        self.metric = metric
        self.mode = mode
        self.running = 0
        self.counts: Counter[str] = Counter()
        self.best: tuple[float, str] | None = None
        self.epoch_of: dict[str, str] = {}
        self.started = time.monotonic()
        self.last_status = self.started
        self.walls: list[float] = []  # trials finished in this session
        self.parallel = 1

    def stamp(self, text: str) -> str:
        line = f"[{clock(time.monotonic() - self.started):>7}] {text}"
        return line if len(line) <= WIDTH else line[: WIDTH - 1] + "…"

    def eta(self) -> str:
        """Time left: remaining trials × mean trial wall time / trials running at once."""
        left = self.total - sum(self.counts.values())
        if not self.walls or left <= 0:
            return "ETA -"
        return f"ETA {clock(left * statistics.fmean(self.walls) / self.parallel)}"

    def heartbeat(self, trial_id: str, epoch: int, epochs: int, every: float = 30.0) -> str | None:
        """A status line at most every ``every`` seconds while trials run (long trials stay visible)."""
        self.epoch_of[trial_id] = f"{trial_id} {epoch}/{epochs}"
        self.parallel = max(self.parallel, self.running)
        now = time.monotonic()
        if now - self.last_status < every:
            return None
        self.last_status = now
        return self.stamp(f"running {', '.join(self.epoch_of.values())} | {self._totals()}")

    def _totals(self) -> str:
        done = sum(self.counts.values())
        failed = self.counts["failed"] + self.counts["diverged"]
        best = f"{self.best[0]:.4f} {self.best[1]}" if self.best else "-"
        pruned = self.counts["pruned"]
        return f"{done}/{self.total} ({pruned} pruned, {failed} failed) {self.eta()} | best {best}"

    def seen(self, record: TrialRecord) -> None:
        """Count a finished trial (also those finished in an earlier session of the run)."""
        self.counts[record.status] += 1
        self.epoch_of.pop(record.trial_id, None)
        value = record.objective
        if value is None or record.status in ("failed", "diverged"):
            return
        better = self.best is None or (value > self.best[0] if self.mode == "max" else value < self.best[0])
        if better:
            self.best = (value, record.trial_id)

    def line(self, record: TrialRecord, values: dict[str, Any]) -> str:
        """One finished trial: its values, final and best metric, time; then the run's totals."""
        if record.wall_seconds:
            self.walls.append(record.wall_seconds)
        final = record.final_val_top1
        detail = record.error or (
            f"final {final:.4f} best {record.best_val_top1:.4f}@{record.best_epoch} "
            f"{record.wall_seconds or 0:.0f}s"
            if final is not None and record.best_val_top1 is not None
            else f"{record.epochs_run} epochs"
        )
        return self.stamp(
            f"{record.trial_id} {record.status:<9} {short_values(values)} seed={record.seed}: {detail} "
            f"| {self._totals()}"
        )

    def finished(self, run_dir: Path) -> list[str]:
        """The last lines: total wall time and what to run next."""
        return [
            f"done in {clock(time.monotonic() - self.started)}",
            f"next: tinyab report {run_dir}",
        ]


def summary_table(records: list[TrialRecord], plan: StudyPlan, slots: list[TrialSlot]) -> list[str]:
    """One line per arm: trials by status; mean, sd and best of best-val-top-1 over completed trials."""
    arm_of = {s.trial_id: s.arm for s in slots}
    labels = [arm.name for arm in plan.arms]
    width = max(3, *(len(label) for label in labels))
    columns = f"{'trials':>6} {'done':>5} {'pruned':>6} {'failed':>6} {'mean':>7} {'sd':>7} {'best':>7}"
    header = f"{'arm':<{width}} {columns}"
    lines = [header, "-" * len(header)]
    for index, label in enumerate(labels):
        mine = [r for r in records if arm_of.get(r.trial_id) == index]
        status = Counter(r.status for r in mine)
        scores = [r.best_val_top1 for r in mine if r.status == "completed" and r.best_val_top1 is not None]
        mean = f"{statistics.fmean(scores):.4f}" if scores else "-"
        sd = f"{statistics.stdev(scores):.4f}" if len(scores) > 1 else "-"
        best = f"{max(scores):.4f}" if scores else "-"
        lines.append(
            f"{label:<{width}} {len(mine):>6} {status['completed']:>5} {status['pruned']:>6} "
            f"{status['failed'] + status['diverged']:>6} {mean:>7} {sd:>7} {best:>7}"
        )
    return lines


def plan_lines(
    plan: StudyPlan,
    profile: str,
    slots: list[TrialSlot],
    todo: list[TrialSlot],
    images: dict[int, int],
    run_dir: Path,
) -> list[str]:
    """What a run is about to do: arms, trials, epochs, images, sampler and pruner, resources."""
    epochs = {index: arm.recipe({}, 0).epochs for index, arm in enumerate(plan.arms)}
    total_images = sum(epochs[s.arm] * images[s.arm] for s in todo) if images else None
    columns = [c for c in plan.columns if c not in plan.nuisance]
    nuisance = ", ".join(plan.nuisance) or "none"
    res = plan.resources
    pruner = plan.pruner
    return [
        f"study {plan.name} (profile {profile}): {plan.question}",
        f"  arms: {len(plan.arms)} ({', '.join(columns) or 'no scientific factor'}); nuisance: {nuisance}; "
        f"{plan.configs} configuration(s) per arm x {len(plan.seeds)} seed(s) {plan.seeds}",
        *_sequential_line(plan),
        f"  trials: {len(slots)} ({len(slots) - len(todo)} already recorded, {len(todo)} to run); "
        f"epochs per trial: {', '.join(str(e) for e in sorted(set(epochs.values())))}",
        f"  images to process: {total_images:,} (train + validation, all epochs, before pruning)"
        if total_images is not None
        else "  images to process: unknown (no data given)",
        f"  sampler: {plan.sampler.name} (seed {plan.sampler.seed}); pruner: {pruner.name}{_pruning(plan)}",
        f"  per trial: {res.cpus:g} CPU, {res.gpus:g} GPU; "
        f"concurrency: {res.concurrency or 'as resources allow'}",
        f"  results: {run_dir}",
    ]


def _pruning(plan: StudyPlan) -> str:
    """What the pruner judges and when: ' on val_top1 after 2 warm-up epochs, within each arm, ...'."""
    if plan.pruner.name == "none":
        return ""
    text = f" on {plan.pruned_on} after {plan.pruner.warmup_epochs} warm-up epochs, within each arm"
    if any(judge != trial for trial, judge in plan.judged_by.items()):
        text += ", each configuration judged by its first seed"
    return text


def _sequential_line(plan: StudyPlan) -> list[str]:
    settings = plan.record.get("sequential")
    if not settings or plan.nuisance:
        return []
    margin = plan.record.get("margin")
    return [
        f"  sequential seeds: +{settings['step']} per batch to the arms of open comparisons, up to "
        f"{settings['max_seeds']} seeds (α {plan.record.get('alpha', 0.05)}, margin "
        f"{margin if margin is not None else 'none: only better-than verdicts stop'})"
    ]
