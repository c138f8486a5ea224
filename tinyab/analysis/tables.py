"""The report's tables as DataFrames: arms, comparisons, ANOVA, ablation, isolation and per-class views.

Every function takes a resolved :class:`~tinyab.analysis.design.Design` and returns raw numbers (metric
values as recorded, fractions for accuracies); formatting is the renderer's job.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict
from typing import Any

import numpy as np
import pandas as pd

from tinyab import stats
from tinyab.analysis.design import Design, arm_label
from tinyab.analysis.formatting import level
from tinyab.errors import UserError
from tinyab.records.reader import CONTINUOUS, StudyRecords
from tinyab.schema import suggest

MAX_ALL_PAIRS_LEVELS = 12
BUCKETS = 5
PER_CLASS_SHOWN = 5

Row = tuple[str, str, str, stats.Comparison]  # (family, a, b, comparison of a against b)


def _best(values: pd.Series, higher: bool) -> float:
    return float(values.max() if higher else values.min()) if len(values) else float("nan")


def arms_table(design: Design, confidence: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """One row per arm: n, mean, sd, CI (and its method), median, best, train−val gap, epochs, counts."""
    metric, rows = design.metric, []
    by_arm = dict(tuple(design.trials.groupby("arm", sort=False)))
    for arm in design.arm_order:
        group = by_arm[arm]
        done = group[(group["status"] == "completed") & group[metric].notna()]
        values = done[metric].to_numpy(dtype=float)
        ci = stats.mean_interval(values, confidence, seed)
        gap = float("nan")
        if {"final_train_top1", "final_val_top1"} <= set(done.columns) and len(done):
            gap = float((done["final_train_top1"] - done["final_val_top1"]).mean())
        status = group["status"].value_counts()
        row: dict[str, Any] = {k: group[k].iloc[0] for k in design.factors}
        row |= {
            "arm": arm,
            "n": len(values),
            "mean": values.mean() if len(values) else np.nan,
            "sd": values.std(ddof=1) if len(values) > 1 else np.nan,
            "ci_low": ci.low,
            "ci_high": ci.high,
            "ci_method": ci.method,
            "median": np.median(values) if len(values) else np.nan,
            "best": _best(done[metric], design.higher_is_better),
            "gap_train_val": gap,
            "epochs": float(done["epochs_run"].mean()) if "epochs_run" in done and len(done) else np.nan,
            "pruned": int(status.get("pruned", 0)),
            "failed": int(status.get("failed", 0)),
            "diverged": int(status.get("diverged", 0)),
        }
        rows.append(row)
    return pd.DataFrame(rows)


def _match_level(key: str, value: str, levels: list[Any]) -> Any:
    """The level of ``key`` that ``value`` (from the command line) names, compared as text or number."""
    for candidate in levels:
        if level(candidate) == value or str(candidate) == value:
            return candidate
        try:
            if isinstance(candidate, (int, float)) and np.isclose(float(value), float(candidate)):
                return candidate
        except ValueError:
            continue
    shown = ", ".join(level(v) for v in levels)
    raise UserError(f"--baseline {key}={value}: no such level{suggest(value, map(level, levels))} ({shown})")


def _select(frame: pd.DataFrame, keys: list[str], values: tuple[Any, ...]) -> pd.DataFrame:
    mask = np.ones(len(frame), dtype=bool)
    for key, value in zip(keys, values, strict=True):
        column = frame[key]
        mask &= (column.isna() if pd.isna(value) else column == value).to_numpy()
    return frame[mask]


def _tuples(frame: pd.DataFrame, keys: list[str]) -> list[tuple[Any, ...]]:
    """Each trial's values of ``keys``: what pairs it with its twin in another arm."""
    return list(frame[keys].itertuples(index=False, name=None))


def compare_levels(
    design: Design,
    keys: list[str],
    pairs: list[tuple[tuple, tuple]],
    alpha: float,
    family: str,
    family_size: int | None = None,
) -> list[Row]:
    """One comparison per (A, B) pair of levels of ``keys``, pooling over the other factors.

    The MDE is at α / ``family_size`` (Holm's strictest step; default: the number of pairs).
    """
    mde_alpha = alpha / max(family_size or len(pairs), 1)
    pair_keys = design.pair_keys(keys)
    rows = []
    for level_a, level_b in pairs:
        sub_a, sub_b = _select(design.done, keys, level_a), _select(design.done, keys, level_b)
        a, b, paired = stats.pair_by_keys(
            _tuples(sub_a, pair_keys), sub_a[design.metric], _tuples(sub_b, pair_keys), sub_b[design.metric]
        )
        result = stats.compare(a, b, paired, 1 - alpha, mde_alpha, design.higher_is_better)
        rows.append((family, arm_label(level_a, keys), arm_label(level_b, keys), result))
    return rows


def _finish(family: list[Row], alpha: float, higher: bool) -> pd.DataFrame:
    """One table row per comparison, with its Holm p and verdict over the whole family."""
    if not family:
        return pd.DataFrame()
    judged = stats.judge([(a, b, c) for _, a, b, c in family], alpha, higher)
    rows = []
    for (name, a, b, c), (p_holm, verdict) in zip(family, judged, strict=True):
        row = {"family": name, "a": a, "b": b} | asdict(c) | {"p_holm": p_holm, "verdict": verdict}
        row["design"] = f"paired ({c.n_a} pairs)" if row.pop("paired") else "unpaired"
        rows.append(row)
    first = ["family", "a", "b", "verdict", "delta", "ci_low", "ci_high", "p_holm", "test", "p", "design"]
    return pd.DataFrame(rows, columns=first + [col for col in rows[0] if col not in first])


def _level_means(design: Design, key: str) -> dict[Any, float]:
    means = design.done.groupby(key, dropna=False)[design.metric].mean()
    return {k: float(v) for k, v in means.items()}


def comparisons_table(
    design: Design, alpha: float, baseline: dict[str, str] | None
) -> tuple[pd.DataFrame, str]:
    """Against ``baseline`` (arms = combinations of its keys), else all pairs of levels of each factor.

    Returns the table (one Holm family) and a note on what was compared.
    """
    rows: list[Row] = []
    if baseline:
        keys = list(baseline)
        for key in keys:
            if key not in design.trials.columns:
                raise UserError(
                    f"--baseline {key}: no such column in trials.csv{suggest(key, design.trials.columns)}"
                )
        base = tuple(_match_level(k, v, list(pd.unique(design.trials[k]))) for k, v in baseline.items())
        levels = [tuple(x) for x in design.done[keys].drop_duplicates().itertuples(index=False)]
        if base not in levels:
            raise UserError(f"--baseline {arm_label(base, keys)}: no completed trial in that arm")
        pairs = [(lvl, base) for lvl in levels if lvl != base]
        rows = compare_levels(design, keys, pairs, alpha, " × ".join(keys))
        note = f"every arm against the baseline {arm_label(base, keys)}"
    else:
        note = "all pairs of levels of each factor, pooled over the other factors (better arm first)"
        pairs_by_factor = {}
        for key in design.factors:
            means = _level_means(design, key)
            ranked = sorted(means, key=lambda k: means[k], reverse=design.higher_is_better)
            if len(ranked) > MAX_ALL_PAIRS_LEVELS:
                note = f"{key}: {len(ranked)} levels; each compared with the best level only"
                pairs_by_factor[key] = [((ranked[0],), (lvl,)) for lvl in ranked[1:]]
            else:
                pairs_by_factor[key] = [((x,), (y,)) for x, y in itertools.combinations(ranked, 2)]
        total = sum(len(p) for p in pairs_by_factor.values())
        for key, pairs in pairs_by_factor.items():
            rows.extend(compare_levels(design, [key], pairs, alpha, key, total))
    return _finish(rows, alpha, design.higher_is_better), note


def anova_table(design: Design) -> pd.DataFrame | None:
    """Factorial ANOVA over the design's factors (two or more), or None."""
    if len(design.factors) < 2:
        return None
    return stats.anova(design.done, design.metric, design.factors)


def ablation_table(study: StudyRecords, design: Design, alpha: float) -> pd.DataFrame | None:
    """Each arm's contribution (baseline − arm) with CI, Holm p, verdict and cost; None for a search."""
    if not design.ablation:
        return None
    base = design.baseline_arm or ""
    arms = [a for a in design.levels["arm"] if str(a) != base]
    if base not in {str(a) for a in design.levels["arm"]}:
        raise UserError(f"{study.runs[0] / 'study.yaml'}: baseline_arm '{base}' has no rerun trials")
    base_level = next(a for a in design.levels["arm"] if str(a) == base)
    rows = compare_levels(design, ["arm"], [((base_level,), (a,)) for a in arms], alpha, "ablation")
    frame = _finish(rows, alpha, design.higher_is_better)
    if frame.empty:
        return frame
    rerun, all_rows = design.trials, study.trials
    tune = all_rows[all_rows["phase"].astype(str) == "tune"] if "phase" in all_rows else all_rows.iloc[:0]
    out = pd.DataFrame(
        {
            "arm": frame["b"],
            "n": frame["n_b"],
            "contribution": frame["delta"],
            "ci_low": frame["ci_low"],
            "ci_high": frame["ci_high"],
            "p_holm": frame["p_holm"],
            "verdict": frame["verdict"],
            "test": frame["test"],
            "p": frame["p"],
            "design": frame["design"],
            "cost": [_seconds(rerun, a) for a in frame["b"]],
            "cost_unit": [_cost_unit(rerun, a) for a in frame["b"]],
        }
    )
    if len(tune):
        out["tune_cost"] = [_seconds(tune, a) for a in frame["b"]]
    return out


def _seconds(trials: pd.DataFrame, arm: str) -> float:
    """Sum of ``wall_seconds`` of an arm's trials (every status: failed trials cost time too)."""
    if "wall_seconds" not in trials:
        return float("nan")
    seconds = trials.loc[trials["arm"].astype(str) == arm, "wall_seconds"]
    return float(pd.to_numeric(seconds, errors="coerce").sum())


def _cost_unit(trials: pd.DataFrame, arm: str) -> str:
    """'GPU-s' or 'CPU-s' from the trials' ``device`` ('mixed-s' when both)."""
    if "device" not in trials:
        return "s"
    devices = trials.loc[trials["arm"].astype(str) == arm, "device"].dropna().astype(str)
    kinds = {"GPU" if d.startswith(("cuda", "gpu")) else "CPU" for d in devices}
    return f"{kinds.pop()}-s" if len(kinds) == 1 else "mixed-s" if kinds else "s"


def _buckets(values: pd.Series, log: bool, count: int = BUCKETS) -> pd.Series:
    """Equal-width buckets (in log space for a log-uniform key), labelled by their range."""
    x = pd.to_numeric(values, errors="coerce")
    finite = x[np.isfinite(x)]
    if log:
        finite = finite[finite > 0]
    if finite.nunique() < 2:
        return x.map(level)
    lo, hi = float(finite.min()), float(finite.max())
    edges = np.geomspace(lo, hi, count + 1) if log else np.linspace(lo, hi, count + 1)
    index = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, count - 1)
    labels = [f"[{edges[i]:.3g}, {edges[i + 1]:.3g}{']' if i == count - 1 else ')'}" for i in range(count)]
    valid = (np.isfinite(x) & (~log | (x > 0))).to_numpy()
    out = [labels[i] if ok else "—" for i, ok in zip(index, valid, strict=True)]
    return pd.Series(pd.Categorical(out, categories=[*labels, "—"], ordered=True), index=values.index)


def _level_order(design: Design):
    """A sort key that keeps the study's order of each factor's levels (buckets keep their own order)."""

    def key(column: pd.Series) -> pd.Series:
        if column.name in design.levels:
            rank = {level(v): i for i, v in enumerate(design.levels[column.name])}
            return column.map(lambda v: rank.get(level(v), len(rank)))
        return column

    return key


def isolation_table(study: StudyRecords, design: Design) -> pd.DataFrame | None:
    """For each continuously sampled key: n, mean and best per value bucket, per arm of the factors.

    None for an ablation: its re-runs use each arm's tuned values, so there is nothing to isolate.
    """
    if design.ablation:
        return None
    parts = []
    for key in design.varied:
        if study.distribution(key) not in CONTINUOUS or key in design.factors:
            continue
        frame = design.done.assign(bucket=_buckets(design.done[key], study.distribution(key) == "loguniform"))
        grouped = frame.groupby([*design.factors, "bucket"], sort=False, observed=True)[design.metric]
        agg = grouped.agg(["count", "mean", "max" if design.higher_is_better else "min"]).reset_index()
        agg.columns = [*design.factors, "bucket", "n", "mean", "best"]
        agg = agg.sort_values([*design.factors, "bucket"], key=_level_order(design), kind="stable")
        agg.insert(0, "param", key)
        parts.append(agg)
    return pd.concat(parts, ignore_index=True) if parts else None


def per_class_table(study: StudyRecords, design: Design, arms: pd.DataFrame) -> pd.DataFrame | None:
    """Top and bottom classes (mean accuracy over the seeds) of the best arm; None without per_class.csv."""
    pc = study.per_class
    if pc is None or pc.empty or not {"trial_id", "class_index", "accuracy"} <= set(pc.columns):
        return None
    ranked = arms.dropna(subset=["mean"]).sort_values("mean", ascending=not design.higher_is_better)
    if ranked.empty:
        return None
    best_arm = ranked["arm"].iloc[0]
    ids = set(design.done.loc[design.done["arm"] == best_arm, "trial_id"])
    rows = pc[pc["trial_id"].isin(ids)]
    if rows.empty:
        return None
    names = [c for c in ("wnid", "name") if c in rows.columns]
    agg = rows.groupby(["class_index", *names], dropna=False)["accuracy"].agg(["mean", "count"]).reset_index()
    agg = agg.sort_values(["mean", "class_index"], ascending=[False, True]).reset_index(drop=True)
    top = agg.head(PER_CLASS_SHOWN).assign(
        rank=[f"top {i + 1}" for i in range(min(PER_CLASS_SHOWN, len(agg)))]
    )
    bottom = agg.tail(PER_CLASS_SHOWN).iloc[::-1]
    bottom = bottom.assign(rank=[f"bottom {i + 1}" for i in range(len(bottom))])
    out = pd.concat([top, bottom.loc[~bottom.index.isin(top.index)]], ignore_index=True)
    out = out.rename(columns={"mean": "accuracy", "count": "trials"})
    out.insert(0, "arm", best_arm)
    return out[["arm", "rank", "class_index", *names, "accuracy", "trials"]]
