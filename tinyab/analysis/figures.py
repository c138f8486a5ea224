"""The report's figures (seaborn on matplotlib's Agg backend), each saved as PNG and SVG.

Curves are aggregated with pandas before plotting, and individual trials are drawn from a capped,
seeded sample, so a study of 10,000 trials draws as fast as one of ten. Intervals come from the tables
or from :mod:`.stats` at the report's confidence, and every label names that confidence.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.collections import LineCollection

from tinyab import stats
from tinyab.analysis.design import Design
from tinyab.analysis.formatting import level, percent
from tinyab.analysis.model import FigureFile
from tinyab.io import atomic_write

MAX_ARMS = 12
MAX_POINTS_PER_ARM = 200
MAX_FADED_CURVES = 150


def _theme() -> None:
    """Seaborn's paper style; SVG text stays text (searchable, smaller) rather than glyph paths."""
    sns.set_theme(style="whitegrid", context="paper", font_scale=1.1, rc={"svg.fonttype": "none"})


def save(fig: plt.Figure, out_dir: Path, name: str, caption: str) -> FigureFile:
    """Write ``name``.png and ``name``.svg atomically (temp file + rename) and close the figure."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for fmt in ("png", "svg"):
        paths[fmt] = atomic_write(
            out_dir / f"{name}.{fmt}",
            lambda f, fmt=fmt: fig.savefig(f, format=fmt, dpi=110, bbox_inches="tight"),
        )
    plt.close(fig)
    return FigureFile(name, caption, paths["png"], paths["svg"])


def _arms_shown(design: Design, arms: pd.DataFrame) -> list[str]:
    """The arms to draw: all of them, or the MAX_ARMS best by mean."""
    if len(arms) <= MAX_ARMS:
        return list(arms["arm"])
    ranked = arms.sort_values("mean", ascending=not design.higher_is_better)
    return list(ranked["arm"].head(MAX_ARMS))


def _with_arm(design: Design, epochs: pd.DataFrame, trial_ids: pd.Series) -> pd.DataFrame:
    arms = design.trials.set_index("trial_id")["arm"]
    rows = epochs[epochs["trial_id"].isin(set(trial_ids))]
    return rows.assign(arm=rows["trial_id"].map(arms))


def learning_curves(
    design: Design, epochs: pd.DataFrame | None, arms: pd.DataFrame, confidence: float
) -> plt.Figure | None:
    """Mean ± t band at ``confidence`` per arm, validation and training top-1, completed trials."""
    columns = [c for c in ("val_top1", "train_top1") if epochs is not None and c in epochs.columns]
    if not columns or "epoch" not in epochs.columns:
        return None
    _theme()
    shown = _arms_shown(design, arms)
    rows = _with_arm(design, epochs, design.done["trial_id"])
    rows = rows[rows["arm"].isin(shown)]
    agg = rows.groupby(["arm", "epoch"])[columns].agg(["mean", "std", "count"])
    fig, axes = plt.subplots(1, len(columns), figsize=(5.5 * len(columns), 4), squeeze=False)
    palette = dict(zip(shown, sns.color_palette("tab10", len(shown)), strict=True))
    for ax, column in zip(axes[0], columns, strict=True):
        for arm in shown:
            if arm not in agg.index.get_level_values(0):
                continue
            part = agg.loc[arm][column]
            half = stats.t_half_width(part["std"], part["count"], confidence)
            ax.plot(part.index, part["mean"], color=palette[arm], label=arm)
            ax.fill_between(
                part.index, part["mean"] - half, part["mean"] + half, color=palette[arm], alpha=0.2
            )
        ax.set(xlabel="epoch", ylabel=column, title=f"{column} (mean ± {percent(confidence)} CI over seeds)")
    axes[0][0].legend(fontsize=7, loc="best")
    fig.tight_layout()
    return fig


def arm_comparison(design: Design, arms: pd.DataFrame, confidence: float) -> plt.Figure:
    """One point per seed and the arm's mean with its CI from the arms table (at ``confidence``)."""
    _theme()
    shown = _arms_shown(design, arms)
    done = design.done[design.done["arm"].isin(shown)]
    done = done.sample(frac=1.0, random_state=0).groupby("arm").head(MAX_POINTS_PER_ARM)
    fig, ax = plt.subplots(figsize=(7, 0.5 * len(shown) + 1.5))
    sns.stripplot(data=done, x=design.metric, y="arm", order=shown, ax=ax, alpha=0.6, size=5, jitter=0.15)
    table = arms.set_index("arm").loc[shown]
    y = np.arange(len(shown))
    low = (table["mean"] - table["ci_low"]).to_numpy(float)
    high = (table["ci_high"] - table["mean"]).to_numpy(float)
    label = f"mean, {percent(confidence)} CI"
    ax.errorbar(table["mean"], y, xerr=[low, high], fmt="D", color="black", capsize=4, label=label)
    ax.set(ylabel="", title=f"{design.metric} per arm (points: seeds)")
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    return fig


def interaction(design: Design, confidence: float) -> plt.Figure | None:
    """The first two factors: an interaction plot (mean ± t CI at ``confidence``) beside a heatmap of
    the means."""
    if len(design.factors) < 2:
        return None
    _theme()
    f0, f1 = design.factors[:2]
    agg = (
        design.done.groupby([f0, f1], dropna=False)[design.metric].agg(["mean", "std", "count"]).reset_index()
    )
    agg["half"] = stats.t_half_width(agg["std"], agg["count"], confidence)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    order0 = [lvl for lvl in design.levels[f0] if lvl in set(agg[f0])]
    x_of = {lvl: i for i, lvl in enumerate(order0)}
    for value, part in agg.groupby(f1, sort=False):
        xs = part[f0].map(x_of).to_numpy(float)
        order = np.argsort(xs)
        left.errorbar(
            xs[order],
            part["mean"].to_numpy()[order],
            yerr=part["half"].to_numpy()[order],
            marker="o",
            capsize=3,
            label=f"{f1}={level(value)}",
        )
    left.set_xticks(range(len(order0)), [level(v) for v in order0])
    left.set(xlabel=f0, ylabel=design.metric, title=f"interaction (mean ± {percent(confidence)} CI)")
    left.legend(fontsize=8)
    grid = agg.pivot(index=f1, columns=f0, values="mean")
    grid = grid.reindex(index=[v for v in design.levels[f1] if v in grid.index], columns=order0)
    sns.heatmap(grid, annot=True, fmt=".3f", cmap="viridis", ax=right, cbar_kws={"label": design.metric})
    right.set(title=f"mean {design.metric}")
    fig.tight_layout()
    return fig


def schedule(design: Design, epochs: pd.DataFrame | None, arms: pd.DataFrame) -> plt.Figure | None:
    """Learning rate and training resolution per epoch (median over the arm's trials)."""
    columns = [c for c in ("lr", "resolution") if epochs is not None and c in epochs.columns]
    if not columns or "epoch" not in epochs.columns:
        return None
    _theme()
    shown = _arms_shown(design, arms)[:8]
    rows = _with_arm(design, epochs, design.trials["trial_id"])
    med = rows[rows["arm"].isin(shown)].groupby(["arm", "epoch"])[columns].median().reset_index()
    per_arm = med.pivot(index="epoch", columns="arm", values=columns)
    if all(per_arm[c].nunique(axis=1, dropna=False).max() <= 1 for c in columns):
        med = med[med["arm"] == med["arm"].iloc[0]].assign(arm="all arms")  # one schedule for every arm
    fig, axes = plt.subplots(1, len(columns), figsize=(5.5 * len(columns), 3.5), squeeze=False)
    for ax, column in zip(axes[0], columns, strict=True):
        style = "steps-post" if column == "resolution" else None
        sns.lineplot(data=med, x="epoch", y=column, hue="arm", ax=ax, drawstyle=style, errorbar=None)
        if column == "lr" and (med["lr"] > 0).all():
            ax.set_yscale("log")
        ax.set(title=f"{column} per epoch")
        ax.get_legend().remove()
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 3), fontsize=8)
    fig.tight_layout(rect=(0, 0.1 + 0.05 * ((len(labels) - 1) // 3), 1, 1))
    return fig


def pruning(design: Design, epochs: pd.DataFrame | None) -> plt.Figure | None:
    """Completed trials' validation curves over pruned ones (faded), each from a capped sample."""
    if epochs is None or not {"epoch", "val_top1"} <= set(epochs.columns):
        return None
    pruned = design.trials.loc[design.trials["status"] == "pruned", "trial_id"]
    if pruned.empty:
        return None
    _theme()
    rng = np.random.default_rng(0)
    fig, ax = plt.subplots(figsize=(7, 4))
    for ids, color, alpha, label in (
        (pruned, "grey", 0.25, f"pruned ({len(pruned)})"),
        (design.done["trial_id"], "tab:blue", 0.5, f"completed ({len(design.done)})"),
    ):
        ids = list(ids)
        if len(ids) > MAX_FADED_CURVES:
            ids = list(rng.choice(ids, MAX_FADED_CURVES, replace=False))
        rows = epochs[epochs["trial_id"].isin(set(ids))].sort_values(["trial_id", "epoch"])
        segments = [g[["epoch", "val_top1"]].to_numpy(float) for _, g in rows.groupby("trial_id")]
        ax.add_collection(LineCollection(segments, colors=color, alpha=alpha, linewidths=1, label=label))
    ax.autoscale()
    ax.set(xlabel="epoch", ylabel="val_top1", title="pruning overview (sampled curves)")
    ax.legend(loc="best")
    fig.tight_layout()
    return fig


def forest(
    comparisons: pd.DataFrame | None, metric: str, interval: str, margin: float | None = None
) -> plt.Figure | None:
    """Every comparison's difference (a − b) with the interval its verdict rests on (``interval`` names
    it), the zero line and, with a margin, the band of equivalence."""
    if comparisons is None or comparisons.empty:
        return None
    _theme()
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(comparisons) + 1.6))
    y = np.arange(len(comparisons))
    delta = comparisons["delta"].to_numpy(float)
    low, high = comparisons["ci_low"].to_numpy(float), comparisons["ci_high"].to_numpy(float)
    ax.errorbar(delta, y, xerr=[delta - low, high - delta], fmt="s", color="black", capsize=4)
    if margin:
        ax.axvspan(-margin, margin, color="tab:green", alpha=0.12, label=f"±{margin:g} (equivalence)")
        ax.legend(loc="lower right", fontsize=8)
    ax.axvline(0, color="grey", linestyle="--")
    ax.set_yticks(y, [f"{a} vs {b}" for a, b in zip(comparisons["a"], comparisons["b"], strict=True)])
    ax.invert_yaxis()
    ax.set(xlabel=f"difference in {metric} (a − b), {interval}", title="comparisons")
    fig.tight_layout()
    return fig
