"""What a run will cost and what it can detect, printed before anything runs.

The size comes from the plans (trials, epochs, images). The minimal detectable effect (MDE) is what
makes an ablation's plan honest: with 3 seeds a paired t-test at 80% power only sees large
contributions. The seed-to-seed spread comes from an earlier run of the same study when one exists
(the SD of the paired arm − baseline differences of its re-runs, read with the records reader), else
from ``DEFAULT_SEED_SD`` (measured here: the small ResNet on the mini data varies by ~1.5 points).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from tinyab.errors import UserError
from tinyab.records import objective_column
from tinyab.study.arms import BASELINE_ARM
from tinyab.study.plan import StudyPlan
from tinyab.study.spec import AblationStudy

DEFAULT_SEED_SD = 0.015  # accuracy as a fraction: 1.5 points
ALPHA = 0.05
POWER = 0.8


def images_per_epoch(plan: StudyPlan, data: str | Path | None) -> dict[int, int]:
    """Train + validation images each arm's recipe goes through per epoch (needs the data)."""
    if data is None:
        return {}
    from tinyab.data import open_dataset
    from tinyab.data.arrays import select_subset

    counts = {}
    with open_dataset(data) as source:
        for index, arm in enumerate(plan.arms):
            recipe = arm.recipe({}, 0)
            subset = select_subset(
                source, recipe.data.classes, recipe.data.train_per_class, recipe.data.val_per_class
            )
            counts[index] = len(subset[0]) + len(subset[2])
    return counts


def earlier_spread(study_dir: Path, metric: str, exclude: Path | None = None) -> tuple[float, Path] | None:
    """The pooled SD of paired (arm − baseline) differences of the newest earlier run under
    ``results/<study>/`` whose re-runs give one."""
    from tinyab.records.reader import read_records_csv
    from tinyab.stats import pooled_paired_sd

    if not study_dir.is_dir():
        return None
    found = sorted(study_dir.glob("*/rerun/trials.csv"), key=lambda p: p.stat().st_mtime, reverse=True)
    column = objective_column(metric)
    for path in found:
        run = path.parent.parent
        if exclude is not None and run.resolve() == exclude.resolve():
            continue
        try:
            trials = read_records_csv(path, [])
        except UserError:
            continue
        if trials is None or not {"arm", "seed", "status", column} <= set(trials.columns):
            continue
        done = trials[trials["status"] == "completed"]
        by_seed = done.pivot_table(index="seed", columns="arm", values=column, aggfunc="mean")
        if BASELINE_ARM not in by_seed.columns:
            continue
        diffs = [
            (by_seed[a] - by_seed[BASELINE_ARM]).dropna().to_numpy()
            for a in by_seed.columns.drop(BASELINE_ARM)
        ]
        sd = pooled_paired_sd(diffs)
        if sd is not None and sd > 0:
            return sd, run
    return None


@dataclass(frozen=True)
class AblationBudget:
    """The size, cost and sensitivity of an ablation run; :meth:`lines` is what ``tinyab ablate`` prints."""

    ablation: AblationStudy
    profile: str
    source: str
    tune_runs: int
    rerun_runs: int
    images: int | None  # train + validation images over all epochs of all runs (None: no data given)
    sd_diff: float  # SD of a paired (arm − baseline) difference, as a fraction
    sd_source: str
    mde: float

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
        mde = "n/a (needs 2 seeds)" if math.isnan(self.mde) else f"{100 * self.mde:.2f} points"
        images = f"{self.images:,}" if self.images is not None else "unknown (no data given)"
        return [
            f"ablation {a.name} ({self.source}), profile {self.profile}: {a.question}",
            f"  arms ({len(arms)}, design {a.design_name}): {', '.join(arms)}",
            f"  tuning: {tuning}",
            f"  re-runs: every arm's best configuration on seeds {seeds} (shared by all arms)",
            f"  runs: {self.tune_runs} tuning + {self.rerun_runs} re-runs = {self.total_runs}; "
            f"images to process: {images} (train + validation, all epochs)",
            f"  minimal detectable effect: {mde} (paired t-test, {len(a.seed_list)} seeds, "
            f"power {POWER:.0%}, alpha {ALPHA}; SD of a paired difference "
            f"{100 * self.sd_diff:.2f} points, {self.sd_source})",
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
    from tinyab.stats import minimal_detectable_effect

    seeds = len(ablation.seed_list)
    tune_runs = len(tune.slots()) if ablation.nuisance else 0
    rerun_runs = len(tune.arms) * seeds
    per_epoch = images_per_epoch(tune, data)
    images = None
    if per_epoch:
        runs_per_arm = (tune_runs // len(tune.arms)) + seeds
        epochs = [arm.recipe({}, 0).epochs for arm in tune.arms]
        images = runs_per_arm * sum(e * per_epoch[i] for i, e in enumerate(epochs))
    earlier = earlier_spread(study_dir, ablation.metric, exclude) if study_dir is not None else None
    if earlier is not None:
        sd_diff, sd_source = earlier[0], f"from the re-runs in {earlier[1]}"
    else:
        sd_diff = DEFAULT_SEED_SD * math.sqrt(2)
        sd_source = (
            f"default: seed SD {100 * DEFAULT_SEED_SD:.1f} points x sqrt(2), no earlier run of this study"
        )
    mde = minimal_detectable_effect(seeds, seeds, sd_diff, ALPHA, paired=True, power=POWER)
    return AblationBudget(ablation, profile, source, tune_runs, rerun_runs, images, sd_diff, sd_source, mde)
