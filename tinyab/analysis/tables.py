"""The report's tables as DataFrames: arms, comparisons, ANOVA, ablation, isolation and per-class views.

Every function takes a resolved :class:`~tinyab.analysis.design.Design` and returns raw numbers (metric
values as recorded, fractions for accuracies); formatting is the renderer's job.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from tinyab import stats
from tinyab.analysis.design import Design, arm_label
from tinyab.analysis.formatting import level, percent
from tinyab.errors import UserError
from tinyab.records.reader import CONTINUOUS, StudyRecords
from tinyab.schema import suggest
from tinyab.sequential import Sequential, replay, verdict

MAX_ALL_PAIRS_LEVELS = 12
BUCKETS = 5
PER_CLASS_SHOWN = 5


class Row(NamedTuple):
    """One comparison of the family: a against b, and a − b grouped by seed (for a sequential replay)."""

    family: str
    a: str
    b: str
    comparison: stats.Comparison
    per_seed: list[np.ndarray]


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


@dataclass(frozen=True)
class Rule:
    """How a family of comparisons is judged: its α, the margin of equivalence, and the sequential
    design when seeds came in batches (``first`` seeds, then ``step`` more up to ``max_seeds``)."""

    alpha: float
    margin: float | None = None
    first: int | None = None
    step: int | None = None
    max_seeds: int | None = None

    def design(self, family: int) -> Sequential | None:
        if self.first is None or self.step is None or self.max_seeds is None:
            return None
        return Sequential(self.alpha, family, self.first, self.step, self.max_seeds)

    def interval(self, family: int) -> str:
        """What the family's intervals are, for axis labels."""
        if self.design(family) is not None:
            return "repeated CI of the decisive look"
        return f"simultaneous {percent(1 - self.alpha / family)} CI"

    def note(self, family: int, noun: str) -> str:
        """The family and the interval its verdicts rest on, in words."""
        head = f"family: Bonferroni over the {family} {noun} of this study (α = {self.alpha:g}); "
        if self.design(family) is not None:
            head += (
                f"sequential seeds ({self.first}, then +{self.step} up to {self.max_seeds}; "
                "O'Brien–Fleming-type spending): repeated confidence intervals of each decisive look"
            )
        else:
            head += f"simultaneous {percent(1 - self.alpha / family)} intervals"
        margin = f"inside ±{self.margin:g}: equivalent" if self.margin else "no margin set"
        return f"{head}; interval excludes 0: better; {margin}"


def compare_levels(
    design: Design,
    keys: list[str],
    pairs: list[tuple[tuple, tuple]],
    family: str,
    rule: Rule,
    family_size: int,
) -> list[Row]:
    """One comparison per (A, B) pair of levels of ``keys``, pooling over the other factors, at the
    family's level (α / ``family_size``); with the per-seed differences a sequential replay reads."""
    level = rule.alpha / max(family_size, 1)
    pair_keys = design.pair_keys(keys)
    rows = []
    for level_a, level_b in pairs:
        sub_a, sub_b = _select(design.done, keys, level_a), _select(design.done, keys, level_b)
        keys_a, keys_b = _tuples(sub_a, pair_keys), _tuples(sub_b, pair_keys)
        a, b, paired = stats.pair_by_keys(keys_a, sub_a[design.metric], keys_b, sub_b[design.metric])
        result = stats.compare(a, b, paired, 1 - level, level, design.higher_is_better)
        per_seed = stats.per_seed_differences(keys_a, sub_a[design.metric], keys_b, sub_b[design.metric])
        rows.append(Row(family, arm_label(level_a, keys), arm_label(level_b, keys), result, per_seed))
    return rows


def _judged(row: Row, rule: Rule, sequential: Sequential | None, higher: bool) -> dict[str, Any]:
    """The row's interval, verdict (and, sequentially, the seeds it used) in table columns."""
    c, sign = row.comparison, 1.0 if higher else -1.0
    low, high = c.ci_low, c.ci_high
    extra: dict[str, Any] = {}
    if sequential is not None and c.paired:
        decision = replay([sign * d for d in row.per_seed], sequential, rule.margin)
        low, high = sorted((sign * decision.low, sign * decision.high))
        extra = {"seeds": decision.seeds, "look": decision.look}
    if not np.isfinite(low):
        return {"ci_low": low, "ci_high": high, "verdict": f"not testable (n={min(c.n_a, c.n_b)})", **extra}
    oriented = (low, high) if higher else (-high, -low)
    code = verdict(*oriented, rule.margin)
    words = stats.verdict_words(code, row.a, row.b, rule.margin)
    return {"ci_low": low, "ci_high": high, "verdict": words, **extra}


def _finish(family: list[Row], rule: Rule, higher: bool) -> pd.DataFrame:
    """One table row per comparison, with its family-adjusted p and the verdict of its interval."""
    if not family:
        return pd.DataFrame()
    sequential = rule.design(len(family))
    adjusted = stats.bonferroni([row.comparison.p for row in family])
    rows = []
    for row, p_adj in zip(family, adjusted, strict=True):
        fields = asdict(row.comparison) | {"p_adj": float(p_adj)} | _judged(row, rule, sequential, higher)
        fields["design"] = f"paired ({row.comparison.n_a} pairs)" if fields.pop("paired") else "unpaired"
        rows.append({"family": row.family, "a": row.a, "b": row.b} | fields)
    first = ["family", "a", "b", "verdict", "delta", "ci_low", "ci_high", "p_adj", "test", "p", "design"]
    return pd.DataFrame(rows, columns=first + [col for col in rows[0] if col not in first])


def _level_means(design: Design, key: str) -> dict[Any, float]:
    means = design.done.groupby(key, dropna=False)[design.metric].mean()
    return {k: float(v) for k, v in means.items()}


def comparisons_table(
    design: Design, rule: Rule, baseline: dict[str, str] | None
) -> tuple[pd.DataFrame, str]:
    """Against ``baseline`` (arms = combinations of its keys), else all pairs of levels of each factor.

    Returns the table (one family) and a note on what was compared and how it is judged.
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
        rows = compare_levels(design, keys, pairs, " × ".join(keys), rule, len(pairs))
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
            rows.extend(compare_levels(design, [key], pairs, key, rule, total))
    judged = (
        f"{note}; {rule.note(len(rows), 'comparisons')}" if rows else f"{note}; one arm, nothing to compare"
    )
    return _finish(rows, rule, design.higher_is_better), judged


def anova_table(design: Design) -> pd.DataFrame | None:
    """Factorial ANOVA over the design's factors (two or more), or None. When every arm ran the same
    seeds the seed is a block, as in the paired comparisons."""
    if len(design.factors) < 2:
        return None
    seeds = design.done.groupby("arm")["seed"].apply(lambda s: tuple(sorted(s)))
    block = "seed" if seeds.nunique() == 1 and seeds.iloc[0] and len(set(seeds.iloc[0])) > 1 else None
    if block and design.done.groupby(["arm", "seed"]).size().max() > 1:
        block = None  # several configurations per arm and seed: not a block design
    return stats.anova(design.done, design.metric, design.factors, block)


def ablation_table(study: StudyRecords, design: Design, rule: Rule) -> pd.DataFrame | None:
    """Each arm's contribution (baseline − arm) with its interval, adjusted p, verdict and cost; None
    for a search."""
    if not design.ablation:
        return None
    base = design.baseline_arm or ""
    arms = [a for a in design.levels["arm"] if str(a) != base]
    if base not in {str(a) for a in design.levels["arm"]}:
        raise UserError(f"{study.runs[0] / 'study.yaml'}: baseline_arm '{base}' has no rerun trials")
    base_level = next(a for a in design.levels["arm"] if str(a) == base)
    rows = compare_levels(design, ["arm"], [((base_level,), (a,)) for a in arms], "ablation", rule, len(arms))
    frame = _finish(rows, rule, design.higher_is_better)
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
            "p_adj": frame["p_adj"],
            "verdict": frame["verdict"],
            "test": frame["test"],
            "p": frame["p"],
            "design": frame["design"],
            "cost": [_seconds(rerun, a) for a in frame["b"]],
            "cost_unit": [_cost_unit(rerun, a) for a in frame["b"]],
        }
    )
    if "seeds" in frame:
        out.insert(7, "seeds", frame["seeds"])
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
