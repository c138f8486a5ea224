"""Which trials are compared, grouped how: the metric, its direction, the factors and the arms.

An *arm* is one combination of the compared factors (by default the study's scientific and grid
hyperparameters; for an ablation, the ``arm`` column of the ``rerun`` phase). Statistics use completed
trials with a finite metric; pruned, failed and diverged trials are counted, not averaged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pandas as pd

from tinyab.analysis.formatting import level
from tinyab.errors import UserError
from tinyab.records.reader import CATEGORICAL, StudyRecords
from tinyab.schema import suggest

DEFAULT_METRIC = "best_val_top1"


@dataclass
class Design:
    """The resolved analysis: ``trials`` has every trial (with an ``arm`` label), ``done`` the usable ones."""

    metric: str
    higher_is_better: bool
    factors: list[str]
    varied: list[str]
    trials: pd.DataFrame
    done: pd.DataFrame
    levels: dict[str, list[Any]]
    arm_order: list[str]
    ablation: bool = False  # an ablation's re-runs compared by arm; decided here only, read everywhere
    baseline_arm: str | None = None  # an ablation's baseline arm as study.yaml names it (None: a search)

    def pair_keys(self, compared: list[str]) -> list[str]:
        """Keys that identify a seed's twin in another arm: the seed and every other varied key.

        Ablation arms are re-run with their own tuned nuisance values on shared seeds: the seed alone.
        """
        if self.ablation:
            return ["seed"]
        return ["seed", *(k for k in self.varied if k not in compared)]


def short_names(keys: list[str]) -> dict[str, str]:
    """The last dotted part of each key, unless two keys share it."""
    last = [k.rsplit(".", 1)[-1] for k in keys]
    return {k: s if last.count(s) == 1 else k for k, s in zip(keys, last, strict=True)}


def arm_label(values: tuple[Any, ...], factors: list[str]) -> str:
    """'xavier' for one factor; 'scheme=xavier, weight_decay=5e-05' for several."""
    if len(factors) == 1:
        return level(values[0])
    names = short_names(factors)
    return ", ".join(f"{names[k]}={level(v)}" for k, v in zip(factors, values, strict=True))


def _ordered_levels(study: StudyRecords, key: str, present: pd.Series) -> list[Any]:
    """Levels in the order the study lists them (grid/choice), then any others sorted."""
    values = list(pd.unique(present))
    listed = study.listed_values(key)
    rank = {level(v): i for i, v in enumerate(listed)}
    return sorted(values, key=lambda v: (rank.get(level(v), len(rank)), level(v)))


def default_factors(study: StudyRecords) -> list[str]:
    """Scientific keys with a categorical distribution, plus every grid key."""
    if study.kind == "ablation" and "arm" in study.trials.columns:
        return ["arm"]
    out = []
    for key in study.varied_keys():
        dist = study.distribution(key)
        role = study.params[key].get("role")
        if dist == "grid" or (role == "scientific" and dist in CATEGORICAL):
            out.append(key)
    return out


def resolve_design(study: StudyRecords, metric: str | None, by: list[str] | None) -> Design:
    """Check the metric and factors against the records and label every trial with its arm."""
    trials = study.trials
    if study.kind == "ablation" and "phase" in trials.columns:
        trials = trials[trials["phase"].astype(str) == "rerun"]
        if trials.empty:
            raise UserError(f"{study.runs[0]}: ablation has no 'rerun' trials yet; nothing to compare")
    metric = metric or DEFAULT_METRIC
    if metric not in trials.columns:
        numeric = [c for c in trials.columns if pd.api.types.is_numeric_dtype(trials[c])]
        raise UserError(
            f"--metric {metric}: no such column in trials.csv{suggest(metric, numeric)} "
            f"(numeric columns: {', '.join(numeric)})"
        )
    base = metric.removeprefix("best_").removeprefix("final_")
    if study.spec.get("metric") in (metric, base) and study.spec.get("mode") in ("min", "max"):
        higher = study.spec["mode"] == "max"  # the study's metric, or the epoch metric it summarises
    else:
        higher = "loss" not in metric and "error" not in metric
    factors = list(by) if by else default_factors(study)
    for key in factors:
        if key not in trials.columns:
            raise UserError(f"--by {key}: no such column in trials.csv{suggest(key, trials.columns)}")
    trials = trials.copy()
    trials[metric] = pd.to_numeric(trials[metric], errors="coerce")
    if factors:
        levels = {k: _ordered_levels(study, k, trials[k]) for k in factors}
        keys = list(zip(*(trials[k] for k in factors), strict=True))
        trials["arm"] = [arm_label(v, factors) for v in keys] if keys else []
        present = set(trials["arm"])
        if math.prod(len(v) for v in levels.values()) <= 10 * len(present):
            order = [arm_label(v, factors) for v in pd.MultiIndex.from_product(list(levels.values()))]
            arm_order = [a for a in order if a in present]
        else:  # a sparse product (e.g. --by a sampled key): keep the order of appearance
            arm_order = list(pd.unique(trials["arm"]))
    else:
        levels, arm_order = {}, ["all trials"]
        trials["arm"] = "all trials"
    done = trials[(trials["status"] == "completed") & trials[metric].notna()]
    if done.empty:
        raise UserError(_nothing_completed(study, trials))
    varied = [k for k in study.varied_keys() if k in trials.columns and k not in ("arm", "phase")]
    ablation = study.kind == "ablation" and factors == ["arm"]
    baseline = str(study.spec["baseline_arm"]) if ablation and study.spec.get("baseline_arm") else None
    return Design(metric, higher, factors, varied, trials, done, levels, arm_order, ablation, baseline)


def _nothing_completed(study: StudyRecords, trials: pd.DataFrame) -> str:
    counts = trials["status"].value_counts()
    summary = ", ".join(f"{n} {s}" for s, n in counts.items())
    message = f"{study.runs[0]}: no completed trial with a metric value ({summary})"
    if "error" in trials.columns:
        errors = trials["error"].dropna().astype(str)
        if len(errors):
            message += f"; first error: {errors.iloc[0]}"
    return message
