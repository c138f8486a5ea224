"""The plan an ablation prints before it runs: its size, its cost and the smallest effect it can detect.

The minimal detectable effect (MDE) is what makes a plan honest: with 3 seeds a paired t-test at 80%
power only sees large contributions. The seed-to-seed spread comes from an earlier run of the same
study when one exists (the SD of the paired arm − baseline differences of its re-runs), else from
``DEFAULT_SEED_SD`` (measured here: the small ResNet on the mini data varies by ~1.5 points per seed).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from tinyab.analysis.stats import minimal_detectable_effect
from tinyab.study.ablation import Ablation
from tinyab.study.ablation_design import BASELINE_ARM, rerun_trials, tuning_trials

DEFAULT_SEED_SD = 0.015  # accuracy as a fraction: 1.5 points
ALPHA = 0.05
POWER = 0.8


@dataclass(frozen=True)
class AblationPlan:
    """What :func:`make_plan` found; :meth:`lines` is what ``tinyab ablate`` prints."""

    ablation: Ablation
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
        arms = [arm.name for arm in a.arms]
        seeds = ", ".join(map(str, a.seeds))
        tuning = (
            f"{a.trials_per_arm} Optuna trials per arm on seed {a.tune_seed} "
            f"(nuisance: {', '.join(a.nuisance)})"
            if a.trials_per_arm
            else "none (no nuisance section)"
        )
        mde = "n/a (needs 2 seeds)" if math.isnan(self.mde) else f"{100 * self.mde:.2f} points"
        images = f"{self.images:,}" if self.images is not None else "unknown (no data given)"
        return [
            f"ablation {a.name} ({a.source}), profile {a.profile}: {a.question}",
            f"  arms ({len(arms)}, design {a.design}): {', '.join(arms)}",
            f"  tuning: {tuning}",
            f"  re-runs: every arm's best configuration on seeds {seeds} (shared by all arms)",
            f"  runs: {self.tune_runs} tuning + {self.rerun_runs} re-runs = {self.total_runs}; "
            f"images to process: {images} (train + validation, all epochs)",
            f"  minimal detectable effect: {mde} (paired t-test, {len(a.seeds)} seeds, "
            f"power {POWER:.0%}, alpha {ALPHA}; SD of a paired difference "
            f"{100 * self.sd_diff:.2f} points, {self.sd_source})",
        ]


def paired_sd(trials: pd.DataFrame, metric: str, baseline: str = BASELINE_ARM) -> float | None:
    """Pooled SD of the (arm − baseline) differences paired by seed, over the re-runs of every arm.

    None when no arm has two seeds in common with the baseline.
    """
    done = trials[(trials["phase"] == "rerun") & (trials["status"] == "completed")]
    by_seed = done.pivot_table(index="seed", columns="arm", values=metric, aggfunc="mean")
    if baseline not in by_seed.columns:
        return None
    variances, dofs = [], []
    for arm in by_seed.columns.drop(baseline):
        diff = (by_seed[arm] - by_seed[baseline]).dropna()
        if len(diff) >= 2:
            variances.append(float(np.var(diff, ddof=1)))
            dofs.append(len(diff) - 1)
    if not dofs:
        return None
    return math.sqrt(sum(v * d for v, d in zip(variances, dofs, strict=True)) / sum(dofs))


def earlier_spread(study_dir: Path, metric: str, exclude: Path | None = None) -> tuple[float, Path] | None:
    """The paired SD of the newest earlier run under ``results/<study>/`` whose re-runs give one."""
    if not study_dir.is_dir():
        return None
    found = sorted(study_dir.glob("*/rerun/trials.csv"), key=lambda p: p.stat().st_mtime, reverse=True)
    for path in found:
        run = path.parent.parent
        if exclude is not None and run.resolve() == exclude.resolve():
            continue
        try:
            trials = pd.read_csv(path)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError):
            continue
        if {"phase", "arm", "seed", "status", metric} <= set(trials.columns):
            sd = paired_sd(trials, metric)
            if sd is not None and sd > 0:
                return sd, run
    return None


def make_plan(
    ablation: Ablation, data: Path | None, study_dir: Path | None, exclude: Path | None = None
) -> AblationPlan:
    """The plan of ``ablation``; ``study_dir`` (``results/<study>``) is searched for earlier runs."""
    from tinyab.study.ablation_run import AblationPhase
    from tinyab.study.runner import images_per_epoch

    runs_per_arm = ablation.trials_per_arm + len(ablation.seeds)
    per_epoch = images_per_epoch(AblationPhase(ablation, "tune"), str(data) if data is not None else None)
    images = None
    if per_epoch:
        epochs = [ablation.recipe(arm, 0).epochs for arm in ablation.arms]
        images = runs_per_arm * sum(e * per_epoch[i] for i, e in enumerate(epochs))
    earlier = earlier_spread(study_dir, ablation.metric, exclude) if study_dir is not None else None
    if earlier is not None:
        sd_diff, source = earlier[0], f"from the re-runs in {earlier[1]}"
    else:
        sd_diff = DEFAULT_SEED_SD * math.sqrt(2)
        source = (
            f"default: seed SD {100 * DEFAULT_SEED_SD:.1f} points x sqrt(2), no earlier run of this study"
        )
    n = len(ablation.seeds)
    mde = minimal_detectable_effect(n, n, sd_diff, ALPHA, paired=True, power=POWER)
    tuning = tuning_trials(ablation.arms, ablation.trials_per_arm, ablation.tune_seed)
    tune_runs = sum(len(seeds) for seeds in tuning.values())
    rerun_runs = len(rerun_trials(ablation.arms, ablation.seeds, {arm.name: {} for arm in ablation.arms}))
    return AblationPlan(ablation, tune_runs, rerun_runs, images, sd_diff, source, mde)
