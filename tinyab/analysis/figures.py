"""The report's figures (seaborn's style on matplotlib's Agg backend), each saved as PNG, SVG and PDF.

Figures are drawn for a paper: one column (3.3 in) or the text width (6.9 in) wide, at their final size
(constrained layout, never cropped afterwards), so an 8-pt label stays 8 pt in print. Legends sit outside
the axes; colour encodes the first factor and line style the others, the same arms in the same colours
in every figure. Curves are aggregated with pandas before plotting and individual trials are drawn from
a capped, seeded sample, so a study of 10,000 trials draws as fast as one of ten. Intervals come from the
tables or from :mod:`.stats` at the report's confidence, and every label names that confidence.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.collections import LineCollection
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from tinyab import stats
from tinyab.analysis.design import Design, arm_label, short_names
from tinyab.analysis.formatting import level, percent, quantity
from tinyab.analysis.model import FigureFile
from tinyab.io import atomic_write

MAX_ARMS = 12
MAX_POINTS_PER_ARM = 200
MAX_FADED_CURVES = 150
COLUMN_IN = 3.3  # one column of a two-column paper
TEXT_IN = 6.9  # the text width of a two-column paper (figure*)
FORMATS = ("png", "svg", "pdf")
LINESTYLES = ("-", "--", ":", "-.", (0, (5, 1, 1, 1, 1, 1)), (0, (1, 3)))
NARROW_LABEL = 30  # characters of tick label that still leave a one-column figure room for its data


def _theme() -> None:
    """Seaborn's paper style at print sizes; SVG text stays text (searchable), PDF fonts are TrueType
    (venues reject Type 3)."""
    sns.set_theme(
        style="whitegrid",
        context="paper",
        rc={
            "svg.fonttype": "none",
            "pdf.fonttype": 42,
            "font.size": 8,
            "axes.labelsize": 8,
            "axes.titlesize": 8,
            "xtick.labelsize": 7,
            "ytick.labelsize": 7,
            "legend.fontsize": 7,
            "legend.title_fontsize": 7,
            "lines.linewidth": 1.2,
            "grid.linewidth": 0.5,
            "axes.linewidth": 0.6,
        },
    )


def save(fig: plt.Figure, out_dir: Path, name: str, caption: str) -> FigureFile:
    """Write ``name``.png, .svg and .pdf atomically (temp file + rename) at the figure's own size and
    close it; no creation date in the vector files, so the same records give the same files."""
    out_dir.mkdir(parents=True, exist_ok=True)
    undated = {"png": None, "svg": {"Date": None}, "pdf": {"CreationDate": None}}
    paths = {
        fmt: atomic_write(
            out_dir / f"{name}.{fmt}",
            lambda f, fmt=fmt: fig.savefig(f, format=fmt, dpi=200, metadata=undated[fmt]),
        )
        for fmt in FORMATS
    }
    plt.close(fig)
    return FigureFile(name, caption, paths["png"], paths["svg"], paths["pdf"])


def _figure(width: float, height: float, panels: int = 1, **kwargs) -> tuple[plt.Figure, np.ndarray]:
    _theme()
    return plt.subplots(1, panels, figsize=(width, height), layout="constrained", squeeze=False, **kwargs)


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


@dataclass
class _Encoding:
    """How arms are told apart: colour by the first factor, line style by the rest; ``handles`` is the
    legend that explains both."""

    colour: dict[str, tuple]
    style: dict[str, object]
    handles: list[Line2D]


def _palette(count: int) -> list[tuple]:
    return sns.color_palette("colorblind" if count <= 10 else "husl", count)


def _encoding(design: Design, shown: list[str]) -> _Encoding:
    """Colour = first factor, line style = the other factors together; one colour per arm when there is
    one factor or more style levels than distinguishable line styles."""
    factors = design.factors
    if len(factors) >= 2:
        values = design.trials.drop_duplicates("arm").set_index("arm", drop=False).loc[shown, factors]
        names = short_names(factors)
        first = [level(v) for v in values[factors[0]]]
        rest = [arm_label(tuple(r), factors[1:]) for r in values[factors[1:]].itertuples(index=False)]
        colours, styles = list(dict.fromkeys(first)), list(dict.fromkeys(rest))
        if len(styles) <= len(LINESTYLES):
            palette = dict(zip(colours, _palette(len(colours)), strict=True))
            linestyle = dict(zip(styles, LINESTYLES, strict=False))
            rest_name = f"{names[factors[1]]}=" if len(factors) == 2 else ""
            handles = [Line2D([], [], color=palette[c], label=f"{names[factors[0]]}={c}") for c in colours]
            handles += [
                Line2D([], [], color="0.3", linestyle=linestyle[s], label=rest_name + s) for s in styles
            ]
            return _Encoding(
                {a: palette[c] for a, c in zip(shown, first, strict=True)},
                {a: linestyle[s] for a, s in zip(shown, rest, strict=True)},
                handles,
            )
    palette = dict(zip(shown, _palette(len(shown)), strict=True))
    named = len(factors) == 1 and not design.ablation  # '5e-05' alone does not say what it is
    prefix = f"{short_names(factors)[factors[0]]}=" if named else ""
    handles = [Line2D([], [], color=palette[a], label=prefix + a) for a in shown]
    return _Encoding(palette, dict.fromkeys(shown, "-"), handles)


def _legend_below(fig: plt.Figure, handles: list, columns: int) -> None:
    """The legend under the axes, inside the figure's size (constrained layout makes room)."""
    fig.legend(
        handles=handles, loc="outside lower center", ncol=max(1, min(columns, len(handles))), frameon=False
    )


def learning_curves(
    design: Design, epochs: pd.DataFrame | None, arms: pd.DataFrame, confidence: float
) -> plt.Figure | None:
    """Mean ± t band at ``confidence`` per arm, validation and training top-1, completed trials."""
    columns = [c for c in ("val_top1", "train_top1") if epochs is not None and c in epochs.columns]
    if not columns or "epoch" not in epochs.columns:
        return None
    shown = _arms_shown(design, arms)
    rows = _with_arm(design, epochs, design.done["trial_id"])
    rows = rows[rows["arm"].isin(shown)]
    agg = rows.groupby(["arm", "epoch"])[columns].agg(["mean", "std", "count"])
    enc = _encoding(design, shown)
    fig, axes = _figure(TEXT_IN if len(columns) > 1 else COLUMN_IN, 2.9, len(columns), sharex=True)
    drawn = set(agg.index.get_level_values(0))
    for ax, column in zip(axes[0], columns, strict=True):
        for arm in (a for a in shown if a in drawn):
            part = agg.loc[arm][column]
            half = stats.t_half_width(part["std"], part["count"], confidence)
            colour = enc.colour[arm]
            ax.plot(part.index, part["mean"], color=colour, linestyle=enc.style[arm])
            ax.fill_between(
                part.index, part["mean"] - half, part["mean"] + half, color=colour, alpha=0.1, lw=0
            )
        ax.set(xlabel="epoch", ylabel=quantity(column))
    band = Patch(color="0.5", alpha=0.3, label=f"mean ± {percent(confidence)} CI over seeds")
    _legend_below(fig, [*enc.handles, band], 4 if len(columns) > 1 else 2)
    return fig


def _two_lines(label: str) -> str:
    """'scheme=xavier, weight_decay=5e-05' over two lines, so tick labels leave room for the data."""
    head, sep, tail = label.partition(", ")
    return f"{head},\n{tail}" if sep else label


def arm_comparison(design: Design, arms: pd.DataFrame, confidence: float) -> plt.Figure:
    """One point per seed (coloured as the arm's curves) and the arm's mean with its CI from the arms
    table (at ``confidence``)."""
    shown = _arms_shown(design, arms)
    done = design.done[design.done["arm"].isin(shown)]
    done = done.sample(frac=1.0, random_state=0).groupby("arm").head(MAX_POINTS_PER_ARM)
    labels = [_two_lines(a) for a in shown]
    longest = max(len(line) for label in labels for line in label.splitlines())
    fig, axes = _figure(COLUMN_IN if longest <= NARROW_LABEL else TEXT_IN, 0.3 * len(shown) + 1.1)
    ax = axes[0][0]
    enc = _encoding(design, shown)
    rng = np.random.default_rng(0)
    for y, arm in enumerate(shown):
        values = done.loc[done["arm"] == arm, design.metric].to_numpy(float)
        jitter = rng.uniform(-0.15, 0.15, len(values))
        ax.scatter(values, y + jitter, s=9, color=enc.colour[arm], alpha=0.7, linewidths=0)
    table = arms.set_index("arm").loc[shown]
    low = (table["mean"] - table["ci_low"]).to_numpy(float)
    high = (table["ci_high"] - table["mean"]).to_numpy(float)
    ax.errorbar(
        table["mean"], np.arange(len(shown)), xerr=[low, high], fmt="D", ms=3.5, color="black", capsize=2.5
    )
    ax.set_yticks(np.arange(len(shown)), labels)
    ax.set_ylim(len(shown) - 0.5, -0.5)
    ax.set(xlabel=quantity(design.metric))
    handles = [
        Line2D([], [], marker="o", ls="", color="0.5", ms=3, label="one seed"),
        Line2D([], [], marker="D", color="black", ms=3.5, label=f"mean, {percent(confidence)} CI"),
    ]
    fig.legend(handles=handles, loc="outside upper center", ncol=2, frameon=False)
    return fig


def interaction(design: Design, confidence: float) -> plt.Figure | None:
    """The first two factors: means ± t CI at ``confidence`` with the second factor's levels side by
    side (dodged, so no interval hides another) beside a heatmap of the same means."""
    if len(design.factors) < 2:
        return None
    f0, f1 = design.factors[:2]
    names = short_names(design.factors)
    agg = (
        design.done.groupby([f0, f1], dropna=False)[design.metric].agg(["mean", "std", "count"]).reset_index()
    )
    agg["half"] = stats.t_half_width(agg["std"], agg["count"], confidence)
    agg["x"], agg["hue"] = agg[f0].map(level), agg[f1].map(level)
    order0 = [level(v) for v in design.levels[f0] if level(v) in set(agg["x"])]
    order1 = [level(v) for v in design.levels[f1] if level(v) in set(agg["hue"])]
    fig, axes = _figure(TEXT_IN, 2.8, 2, width_ratios=(1.25, 1))
    left, right = axes[0]
    step = min(0.15, 0.6 / len(order1))
    colours = _palette(len(order1))
    for j, value in enumerate(order1):
        part = agg[agg["hue"] == value].set_index("x").reindex(order0)
        xs = np.arange(len(order0)) + (j - (len(order1) - 1) / 2) * step
        left.errorbar(
            xs,
            part["mean"],
            yerr=part["half"],
            marker="o",
            ms=3.5,
            capsize=2,
            lw=1,
            color=colours[j],
            label=value,
        )
    left.set_xticks(range(len(order0)), order0)
    left.set_xlim(-0.5, len(order0) - 0.5)
    left.set(xlabel=names[f0], ylabel=quantity(design.metric))
    left.legend(
        title=f"{names[f1]} (mean ± {percent(confidence)} CI)",
        loc="lower center",
        bbox_to_anchor=(0.5, 1.0),
        ncol=min(len(order1), 4),
        frameon=False,
    )
    grid = agg.pivot(index="hue", columns="x", values="mean").reindex(index=order1, columns=order0)
    sns.heatmap(
        grid,
        annot=True,
        fmt=".3f",
        annot_kws={"fontsize": 7},
        cmap="viridis",
        ax=right,
        cbar_kws={"label": f"mean {quantity(design.metric)}"},
    )
    right.set(xlabel=names[f0], ylabel=names[f1])
    right.tick_params(axis="y", rotation=0)
    return fig


def schedule(design: Design, epochs: pd.DataFrame | None, arms: pd.DataFrame) -> plt.Figure | None:
    """Learning rate and training resolution per epoch (median over the arm's trials); a quantity that
    never changes gets no panel, and no figure is drawn when neither changes."""
    columns = [c for c in ("lr", "resolution") if epochs is not None and c in epochs.columns]
    if not columns or "epoch" not in epochs.columns:
        return None
    shown = _arms_shown(design, arms)[:8]
    rows = _with_arm(design, epochs, design.trials["trial_id"])
    med = rows[rows["arm"].isin(shown)].groupby(["arm", "epoch"])[columns].median().reset_index()
    columns = [c for c in columns if med[c].nunique() > 1]
    if not columns:
        return None
    per_arm = med.pivot(index="epoch", columns="arm", values=columns)
    shared = all(per_arm[c].nunique(axis=1, dropna=False).max() <= 1 for c in columns)
    if shared:
        med = med[med["arm"] == med["arm"].iloc[0]]
    enc = _encoding(design, shown)
    fig, axes = _figure(TEXT_IN if len(columns) > 1 else COLUMN_IN, 2.4, len(columns))
    for ax, column in zip(axes[0], columns, strict=True):
        style = "steps-post" if column == "resolution" else "default"
        for arm, part in med.groupby("arm", sort=False):
            colour, line = ("0.2", "-") if shared else (enc.colour[arm], enc.style[arm])
            ax.plot(part["epoch"], part[column], drawstyle=style, color=colour, linestyle=line)
        if column == "lr" and (med["lr"] > 0).all():
            ax.set_yscale("log")
        ax.set(xlabel="epoch", ylabel=quantity(column))
    if shared:
        fig.suptitle("the same schedule for every arm", fontsize=8)
    else:
        _legend_below(fig, enc.handles, 4 if len(columns) > 1 else 2)
    return fig


def pruning(design: Design, epochs: pd.DataFrame | None) -> plt.Figure | None:
    """Completed trials' validation curves over pruned ones (faded), each from a capped sample."""
    if epochs is None or not {"epoch", "val_top1"} <= set(epochs.columns):
        return None
    pruned = design.trials.loc[design.trials["status"] == "pruned", "trial_id"]
    if pruned.empty:
        return None
    rng = np.random.default_rng(0)
    fig, axes = _figure(COLUMN_IN, 2.6)
    ax = axes[0][0]
    handles = []
    for ids, colour, alpha, label in (
        (pruned, "0.55", 0.3, f"pruned ({len(pruned)})"),
        (design.done["trial_id"], "tab:blue", 0.5, f"completed ({len(design.done)})"),
    ):
        ids = list(ids)
        if len(ids) > MAX_FADED_CURVES:
            ids = list(rng.choice(ids, MAX_FADED_CURVES, replace=False))
            label += f", {MAX_FADED_CURVES} drawn"
        rows = epochs[epochs["trial_id"].isin(set(ids))].sort_values(["trial_id", "epoch"])
        segments = [g[["epoch", "val_top1"]].to_numpy(float) for _, g in rows.groupby("trial_id")]
        ax.add_collection(LineCollection(segments, colors=colour, alpha=alpha, linewidths=0.8))
        handles.append(Line2D([], [], color=colour, label=label))
    ax.autoscale()
    ax.set(xlabel="epoch", ylabel=quantity("val_top1"))
    fig.legend(handles=handles, loc="outside upper center", ncol=2, frameon=False)
    return fig


def forest(
    comparisons: pd.DataFrame | None, metric: str, interval: str, margin: float | None = None
) -> plt.Figure | None:
    """Every comparison's difference (a − b) with the interval its verdict rests on (``interval`` names
    it), the zero line and, with a margin, the band of equivalence; grouped by family, decisive verdicts
    filled and undecided ones open."""
    if comparisons is None or comparisons.empty:
        return None
    families = list(comparisons["family"])
    headed = len(set(families)) > 1
    y, ticks, labels, bold = [], [], [], []
    row = 0
    for i, (family, a, b) in enumerate(zip(families, comparisons["a"], comparisons["b"], strict=True)):
        if headed and (i == 0 or families[i - 1] != family):
            ticks.append(row), labels.append(str(family)), bold.append(True)
            row += 1
        y.append(row), ticks.append(row), labels.append(f"{a} vs {b}"), bold.append(False)
        row += 1
    y = np.array(y, dtype=float)
    wide = max(len(label) for label in labels) > NARROW_LABEL
    fig, axes = _figure(TEXT_IN if wide else COLUMN_IN, 0.24 * row + 1.3)
    ax = axes[0][0]
    delta = comparisons["delta"].to_numpy(float)
    low, high = comparisons["ci_low"].to_numpy(float), comparisons["ci_high"].to_numpy(float)
    ax.errorbar(delta, y, xerr=[delta - low, high - delta], fmt="s", ms=4, color="black", capsize=2.5)
    open_ = comparisons["verdict"].str.startswith(("inconclusive", "not testable")).to_numpy()
    ax.scatter(delta[open_], y[open_], marker="s", s=12, color="white", zorder=3)
    kinds = [("decisive", "black", not open_.all()), ("inconclusive", "white", open_.any())]
    handles = [
        Line2D([], [], marker="s", color="black", mfc=fill, ms=4, label=k) for k, fill, seen in kinds if seen
    ]
    if margin:
        ax.axvspan(-margin, margin, color="tab:green", alpha=0.12, lw=0)
        handles.append(Patch(color="tab:green", alpha=0.25, label=f"±{margin:g} (equivalence)"))
    ax.axvline(0, color="0.4", linestyle="--", lw=0.8)
    ax.set_yticks(ticks, labels)
    for text, is_family in zip(ax.get_yticklabels(), bold, strict=True):
        text.set_fontweight("bold" if is_family else "normal")
    ax.set_ylim(row - 0.5, -0.5)
    ax.xaxis.set_major_locator(MaxNLocator(5, steps=[1, 2, 2.5, 5, 10]))  # what a column's width holds
    ax.grid(axis="y", visible=False)
    what = (
        f"difference a − b\nin {quantity(metric)}" if not wide else f"difference a − b in {quantity(metric)}"
    )
    ax.set(xlabel=f"{what}\n{interval}")
    fig.legend(handles=handles, loc="outside upper center", ncol=len(handles), frameon=False)
    return fig
