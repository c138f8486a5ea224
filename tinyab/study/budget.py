"""What a run will cost and what it can decide, printed before anything runs (``--dry-run``).

The size comes from the plans (trials, epochs, images). The seed plan is what makes a plan honest:
for each comparison of the family, the seeds per arm that detect the study's ``margin`` with its
``power`` at the family's level (Bonferroni, α/m), for a fixed design and for sequential seeds, and
whether the planned seeds suffice; without a margin, the smallest difference the planned seeds detect.
The spread of paired differences comes from the newest earlier run of the same study in the results
folder (read with the records reader), else from ``DEFAULT_SEED_SD`` (measured here: the small ResNet
on the mini data varies by ~1.5 points per seed; a paired difference by √2 times that).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from tinyab.errors import UserError
from tinyab.records import objective_column
from tinyab.stats import minimal_detectable_effect
from tinyab.study.plan import StudyPlan, rerun_plan
from tinyab.study.spec import AblationStudy, StudyFile

DEFAULT_SEED_SD = 0.015  # accuracy as a fraction: 1.5 points


def images_per_epoch(plan: StudyPlan, data: str | Path | None) -> dict[int, int]:
    """Train + validation images each arm's recipe goes through per epoch (needs the data); the
    validation set counts twice when the weight average is evaluated too.

    An arm whose batch is larger than its training set is refused here, before Ray starts: the recipe
    alone cannot tell when it takes every image of a class and the dataset has fewer than 500.
    """
    if data is None:
        return {}
    counts = {}
    for index, arm in enumerate(plan.arms):
        recipe = arm.recipe({}, 0)
        d = recipe.data
        train, val = subset_sizes(str(data), d.classes, d.train_per_class, d.val_per_class)
        if recipe.batch_size > train:
            raise UserError(
                f"batch_size: {recipe.batch_size} is more than the training set's {train:,} "
                f"images (data.classes {d.classes} of {data}); expected at most {train}"
            )
        counts[index] = train + val * (1 if recipe.ema_epochs is None else 2)
    return counts


@functools.cache
def subset_sizes(
    data: str, classes: int, train_per_class: int | None, val_per_class: int | None
) -> tuple[int, int]:
    """Train and validation images of a subset, read once per process (a search asks before Ray starts
    and again when it prints its plan; the full archive's index takes a second to read)."""
    from tinyab.data import open_dataset
    from tinyab.data.subset import select_subset

    with open_dataset(data) as source:
        train, _, val, _ = select_subset(source, classes, train_per_class, val_per_class)
    return len(train), len(val)


@dataclass(frozen=True)
class Observed:
    """What earlier runs of the same study recorded: each (arm, seed)'s objective, seconds per trial."""

    run: Path
    values: dict[tuple[int, int], float]
    seconds: dict[int, float]  # mean wall seconds of a trial, by arm


def observe(plan: StudyPlan, trials: pd.DataFrame, run: Path) -> Observed:
    """Match an earlier run's ``trials.csv`` rows to the plan's arms by their factor levels (as text)."""
    column = objective_column(plan.metric)
    keys = [tuple(str(arm.label[f]) for f in plan.factors) for arm in plan.arms]
    sign = 1.0 if plan.mode == "max" else -1.0
    values: dict[tuple[int, int], float] = {}
    walls: dict[int, list[float]] = {}
    for row in trials.to_dict("records"):
        key = tuple(str(row.get(f)) for f in plan.factors)
        if key not in keys or row.get("status") != "completed":
            continue
        arm = keys.index(key)
        values[(arm, int(row["seed"]))] = sign * float(row[column])
        if pd.notna(row.get("wall_seconds")):
            walls.setdefault(arm, []).append(float(row["wall_seconds"]))
    return Observed(run, values, {arm: sum(w) / len(w) for arm, w in walls.items()})


def earlier_runs(plan: StudyPlan, study_dir: Path, exclude: Path | None = None) -> list[Observed]:
    """Earlier runs of the study under ``results/<study>/`` (newest first) that hold the plan's arms;
    an ablation's comparison runs are its ``rerun`` folders."""
    from tinyab.records.reader import read_records_csv

    if not study_dir.is_dir():
        return []
    pattern = "*/rerun/trials.csv" if plan.baseline is not None else "*/trials.csv"
    found = []
    for path in sorted(study_dir.glob(pattern), key=lambda p: p.stat().st_mtime, reverse=True):
        run = path.parent.parent if plan.baseline is not None else path.parent
        if exclude is not None and run.resolve() == exclude.resolve():
            continue
        try:
            trials = read_records_csv(path, [])
        except UserError:
            continue
        needed = {"seed", "status", objective_column(plan.metric), *plan.factors}
        if trials is not None and needed <= set(trials.columns):
            found.append(observe(plan, trials, run))
    return found


@dataclass(frozen=True)
class AblationBudget:
    """The size, cost and sensitivity of an ablation run; :meth:`lines` is what ``tinyab ablate`` prints."""

    ablation: AblationStudy
    profile: str
    source: str
    tune_runs: int
    rerun_runs: int
    images: int | None  # train + validation images over all epochs of all runs (None: no data given)
    seeds: list[str]  # the seed plan: what each comparison needs (:func:`seed_plan`)

    @property
    def total_runs(self) -> int:
        return self.tune_runs + self.rerun_runs

    def lines(self) -> list[str]:
        a = self.ablation
        arms = [arm.name for arm in a.arms()]
        seeds = ", ".join(map(str, a.seed_list))
        tuning = (
            f"{a.num_samples} Optuna trials per arm on seed {a.tune_seed} (nuisance: {', '.join(a.nuisance)})"
            if a.nuisance
            else "none (no nuisance section)"
        )
        images = f"{self.images:,}" if self.images is not None else "unknown (no data given)"
        return [
            f"ablation {a.name} ({self.source}), profile {self.profile}: {a.question}",
            f"  arms ({len(arms)}, design {a.design_name}): {', '.join(arms)}",
            f"  tuning: {tuning}",
            f"  re-runs: every arm's best configuration on seeds {seeds} (shared by all arms)",
            f"  runs: {self.tune_runs} tuning + {self.rerun_runs} re-runs = {self.total_runs}; "
            f"images to process: {images} (train + validation, all epochs)",
            *self.seeds,
        ]


def ablation_budget(
    ablation: AblationStudy,
    tune: StudyPlan,
    profile: str,
    source: str,
    data: str | Path | None,
    study_dir: Path | None,
    exclude: Path | None = None,
) -> AblationBudget:
    """The budget of ``ablation``; ``study_dir`` (``results/<study>``) is searched for earlier runs."""
    seeds = len(ablation.seed_list)
    tune_runs = len(tune.slots()) if ablation.nuisance else 0
    rerun_runs = len(tune.arms) * seeds
    per_epoch = images_per_epoch(tune, data)
    images = None
    if per_epoch:
        runs_per_arm = (tune_runs // len(tune.arms)) + seeds
        epochs = [arm.recipe({}, 0).epochs for arm in tune.arms]
        images = runs_per_arm * sum(e * per_epoch[i] for i, e in enumerate(epochs))
    rerun = rerun_plan(ablation, profile, source, {arm.name: {} for arm in ablation.arms()})
    lines = seed_plan(rerun, ablation, study_dir, exclude)
    return AblationBudget(ablation, profile, source, tune_runs, rerun_runs, images, lines)


def _points(x: float) -> str:
    return f"{100 * x:.2f} points"


def seed_plan(plan: StudyPlan, study: StudyFile, study_dir: Path | None, exclude: Path | None) -> list[str]:
    """For each comparison: the spread of its paired differences (earlier runs, else the default), the
    seeds per arm that detect ``margin`` with the study's power at the family's level (fixed design,
    and the most a sequential run would use), and whether the planned seeds suffice. Without a margin,
    the smallest difference the planned seeds detect (MDE)."""
    from tinyab.sequential import seeds_for_power, sequential_max_seeds
    from tinyab.study.growth import differences, family

    members = family(plan)
    if not members:
        return ["  seeds: one arm, nothing to compare"]
    earlier = earlier_runs(plan, study_dir, exclude) if study_dir is not None else []
    m, planned, alpha, power = len(members), len(plan.seeds), study.alpha, study.power
    lines = [f"  seeds (family: {m} comparisons, α/m = {alpha / m:.4g}, power {power:.0%}):"]
    needs: list[int] = []
    for member in members:
        sd, source = None, ""
        for run in earlier:
            diffs = [d for d in differences(plan, member, run.values) if len(d)]
            pooled = np.concatenate(diffs) if diffs else np.array([])
            if len(pooled) >= 3 and np.std(pooled, ddof=1) > 0:
                sd, source = float(np.std(pooled, ddof=1)), f"from {run.run}"
                break
        if sd is None:
            sd = DEFAULT_SEED_SD * math.sqrt(2)
            source = f"default: seed SD {_points(DEFAULT_SEED_SD)} x sqrt(2), no earlier run"
        per_seed = len(member.a)
        head = f"    {member.name}: SD of a paired difference {_points(sd)} ({source})"
        if study.margin is None:
            mde = minimal_detectable_effect(
                planned * per_seed, planned * per_seed, sd, alpha / m, True, power
            )
            lines.append(f"{head}; {planned} seeds detect |Δ| ≥ {_points(mde)} (set a margin to plan seeds)")
            continue
        fixed = seeds_for_power(study.margin, sd, alpha, m, power, per_seed)
        needs.append(fixed)
        step = study.sequential.step if study.sequential else 2
        most = sequential_max_seeds(study.margin, sd, alpha, m, power, planned, step, per_seed, study.margin)
        verdict = "enough" if planned >= fixed else "not enough"
        lines.append(
            f"{head}; ±{_points(study.margin)} needs {fixed} seeds per arm (fixed design), at most {most} "
            f"sequentially; planned {planned}: {verdict}"
        )
    if needs:
        lines.append(_cost_line(plan, max(needs), earlier))
    return lines


def _cost_line(plan: StudyPlan, seeds: int, earlier: list[Observed]) -> str:
    """The compute of the seeds every comparison needs, from recorded seconds per trial of each arm."""
    trials = seeds * len(plan.arms) * plan.configs
    seconds = [run.seconds for run in earlier if len(run.seconds) == len(plan.arms)]
    if not seconds:
        return f"    fixed design: {seeds} seeds per arm = {trials} trials; compute unknown (no earlier run)"
    total = sum(seeds * plan.configs * s for s in seconds[0].values())
    return (
        f"    fixed design: {seeds} seeds per arm = {trials} trials, about {total / 60:.1f} trial-minutes "
        "(recorded seconds per trial of each arm)"
    )
