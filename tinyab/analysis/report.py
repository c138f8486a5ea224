"""`tinyab report`: records -> tables, figures and verdicts; every file written atomically.

``report(path, options)`` loads every study under ``path``, builds one :class:`StudyReport` per study and
writes its CSV tables, figures (PNG, SVG and PDF), ``report.md``, ``report.tex`` (a fragment to
``\\input``), ``report_standalone.tex`` (compiles by itself) and a self-contained ``report.html``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from tinyab import stats
from tinyab.analysis import figures, render, tables
from tinyab.analysis.design import Design, resolve_design
from tinyab.analysis.formatting import cell, percent
from tinyab.analysis.model import Options, StudyReport, Table
from tinyab.analysis.pruning import add_pruning_audit
from tinyab.io import atomic_write_text
from tinyab.records.reader import StudyRecords, load_studies
from tinyab.sequential import seeds_for_power

MAX_VERDICTS = 12
TABLE_KEYS = (
    "arms", "ablation", "comparisons", "anova", "isolation", "pruning_audit", "importance", "per_class",
)  # fmt: skip
FIGURE_NAMES = ("learning_curves", "arms", "interaction", "schedule", "pruning", "forest")


def _header(study: StudyRecords, design: Design) -> list[str]:
    counts = design.trials["status"].value_counts()
    status = ", ".join(f"{int(counts.get(s, 0))} {s}" for s in ("completed", "pruned", "failed", "diverged"))
    direction = "higher" if design.higher_is_better else "lower"
    lines = []
    if study.spec.get("question"):
        lines.append(f"Question: {study.spec['question']}")
    lines += [
        f"Runs: {', '.join(str(p) for p in study.runs)}",
        f"Metric: {design.metric} ({direction} is better); {len(design.trials)} trials: {status}.",
        f"Arms: {', '.join(design.factors) or 'all trials together'}.",
    ]
    return lines


def _verdict_lines(comparisons: pd.DataFrame, anova: pd.DataFrame | None, alpha: float) -> list[str]:
    """The main claims, decisive ones first: comparisons, then ANOVA effects."""
    lines: list[tuple[int, float, str]] = []
    for r in comparisons.to_dict("records") if not comparisons.empty else []:
        ci = f"[{cell(r['ci_low'])}, {cell(r['ci_high'])}]" if np.isfinite(r["ci_low"]) else "[no CI]"
        seeds = f", {int(r['seeds'])} seeds" if np.isfinite(r.get("seeds", np.nan)) else ""
        undecided = r["verdict"].startswith(("inconclusive", "not testable"))
        lines.append(
            (
                1 if undecided else 0,
                r["p_adj"] if np.isfinite(r["p_adj"]) else 2.0,
                f"{r['family']}: {r['a']} vs {r['b']}: Δ {r['delta']:+.4f} {ci}{seeds} → {r['verdict']}",
            )
        )
    for r in anova.to_dict("records") if anova is not None else []:
        if r["source"] not in ("Residual", "seed") and np.isfinite(r["p"]):
            lines.append(
                (
                    2,
                    r["p"],
                    f"ANOVA {r['source']}: F = {cell(r['F'])}, p = {cell(r['p'])}, "
                    f"partial η² = {cell(r['partial_eta_sq'])} → {stats.anova_verdict(r['p'], alpha)}",
                )
            )
    lines.sort(key=lambda t: t[:2])
    shown = [text for _, _, text in lines[:MAX_VERDICTS]]
    if len(lines) > MAX_VERDICTS:
        shown.append(f"… {len(lines) - MAX_VERDICTS} more in comparisons.csv and anova.csv")
    return shown


def rule_of(study: StudyRecords, options: Options) -> tables.Rule:
    """How the study's family is judged: α and margin from the command line, else from the study."""
    spec = study.spec
    alpha = options.alpha if options.alpha is not None else float(spec.get("alpha") or 0.05)
    margin = options.margin if options.margin is not None else spec.get("margin")
    sequential = spec.get("sequential") or {}
    first = len(spec.get("seeds") or []) if sequential else None
    return tables.Rule(alpha, margin, first, sequential.get("step"), sequential.get("max_seeds"))


def _trials_used(design: Design, comparisons: pd.DataFrame, rule: tables.Rule, power: float) -> str | None:
    """For a sequential run: the trials it used against a fixed design with the same power, i.e. the
    seeds per arm that a fixed-n paired t test at α/m needs against ±margin for every comparison (at
    the SD of paired differences observed)."""
    if rule.design(max(len(comparisons), 1)) is None or rule.margin is None or comparisons.empty:
        return None
    needed = []
    for row in comparisons.itertuples():
        if not (np.isfinite(row.sd) and row.sd > 0 and row.seeds > 0):
            return None
        per_seed = max(1, round(row.n_a / row.seeds))
        family = len(comparisons)
        needed.append(seeds_for_power(rule.margin, row.sd, rule.alpha, family, power, per_seed))
    fixed = max(needed) * len(design.arm_order)
    used = len(design.trials)
    return (
        f"Sequential seeds used {used} trials; a fixed design with the same power ({power:.0%} against "
        f"±{rule.margin:g} for each comparison) needs {max(needed)} seeds per arm = {fixed} trials "
        f"({used / fixed:.0%} of it used)."
    )


def build_report(study: StudyRecords, options: Options, out_dir: Path) -> StudyReport:
    """Compute every table and figure of one study; figures are saved into ``out_dir``."""
    design = resolve_design(study, options.metric, options.by)
    rule = rule_of(study, options)
    alpha = rule.alpha
    level = percent(1 - alpha)
    arms = tables.arms_table(design, 1 - alpha, options.seed)
    baseline = options.baseline
    if baseline is None and design.baseline_arm:
        baseline = {"arm": design.baseline_arm}
    comparisons, comparison_note = tables.comparisons_table(design, rule, baseline)
    anova = tables.anova_table(design)
    ablation = tables.ablation_table(study, design, rule)
    header = _header(study, design)
    if not comparisons.empty:
        header.append(f"Verdicts: {rule.note(len(comparisons), 'comparisons')}.")
    used = _trials_used(design, comparisons, rule, float(study.spec.get("power") or 0.8))
    if used:
        header.append(used)
    report = StudyReport(study.name, out_dir, header, [], warnings=list(study.warnings))
    report.verdicts = _verdict_lines(comparisons, anova, alpha)

    ci_methods = ", ".join(sorted(set(arms["ci_method"])))
    hide = ("arm",) if design.factors and "arm" not in design.factors else ()
    if len(set(arms["ci_method"])) == 1:
        hide += ("ci_method",)
    report.tables.append(
        Table(
            "arms",
            "Arms",
            arms,
            f"{level} CI of the mean: {ci_methods} (t below 10 seeds and above 1000, seeded BCa between).",
            hide,
        )
    )
    single = arms.loc[arms["n"] < 2, "arm"].tolist()
    if single:
        report.warnings.append(
            f"{len(single)} arm(s) with fewer than 2 completed seeds: no CI ({'; '.join(single[:5])})"
        )
    if ablation is not None:
        report.tables.append(
            Table(
                "ablation",
                "Ablation: contribution = baseline − arm",
                ablation,
                f"rerun phase only; {rule.note(len(ablation), 'arms')}; cost = sum of wall_seconds.",
            )
        )
    if not comparisons.empty:
        report.tables.append(
            Table(
                "comparisons",
                "Comparisons",
                comparisons,
                f"{comparison_note}; Δ = mean(a) − mean(b); p_adj = min(1, m·p); "
                "MDE: |Δ| detected with 80% power at α/m.",
                ("n_a", "n_b", "mean_a", "mean_b", "sd"),
            )
        )
    else:
        report.notes.append("Comparisons: only one arm; nothing to compare.")
    if anova is not None:
        report.tables.append(
            Table("anova", "Factorial ANOVA (type II)", anova, "partial η² = SS / (SS + SS_residual).")
        )
    elif len(design.factors) >= 2:
        report.notes.append("ANOVA: not computed (a factor with one level, or no replicates).")
    isolation = tables.isolation_table(study, design)
    if isolation is not None:
        report.tables.append(Table("isolation", "Sampled hyperparameters by bucket (descriptive)", isolation))
    add_pruning_audit(study, report)
    _importance(study, options, report)
    per_class = tables.per_class_table(study, design, arms)
    if per_class is not None:
        report.tables.append(Table("per_class", "Per class: best arm's top and bottom classes", per_class))
    if options.figures:
        _figures(study, design, arms, comparisons, rule, out_dir, report)
    return report


def _importance(study: StudyRecords, options: Options, report: StudyReport) -> None:
    if not study.optuna_dbs:
        report.notes.append("fANOVA importance: no optuna.db in the run; skipped.")
        return
    from tinyab.analysis.importance import fanova_importance

    table, note = fanova_importance(study.optuna_dbs[0], options.seed)
    if table is None:
        report.notes.append(note)
    else:
        report.tables.append(Table("importance", "fANOVA importance (descriptive)", table, note))


def _figures(
    study: StudyRecords,
    design: Design,
    arms: pd.DataFrame,
    comparisons: pd.DataFrame,
    rule: tables.Rule,
    out_dir: Path,
    report: StudyReport,
) -> None:
    """Draw and save every figure that applies; the tables' intervals where they exist, else at 1 − α.

    Captions say what is drawn and at which level, as a paper's caption would."""
    confidence = 1 - rule.alpha
    level = percent(confidence)
    interval = rule.interval(max(len(comparisons), 1))
    curves = figures.learning_curves(design, study.epochs, arms, confidence)
    made = [
        ("learning_curves", f"Learning curves: mean and {level} CI over seeds per arm", curves),
        (
            "arms",
            f"Per arm: every seed and the mean with its {level} CI",
            figures.arm_comparison(design, arms, confidence),
        ),
        (
            "interaction",
            f"Interaction of the first two factors: mean and {level} CI, and the means as a heatmap",
            figures.interaction(design, confidence),
        ),
        (
            "schedule",
            "Schedule per epoch (a quantity that never changes is left out)",
            figures.schedule(design, study.epochs, arms),
        ),
        (
            "pruning",
            "Pruning: validation curves of completed and pruned trials",
            figures.pruning(design, study.epochs),
        ),
        (
            "forest",
            f"Comparisons: each difference with the interval its verdict rests on ({interval})",
            figures.forest(comparisons, design.metric, interval, rule.margin),
        ),
    ]
    for name, caption, fig in made:
        if fig is not None:
            report.figures.append(figures.save(fig, out_dir, name, caption))


def write_outputs(report: StudyReport) -> None:
    """Every table as CSV plus report.md, report.tex and report.html in the report's folder."""
    out = report.out_dir
    out.mkdir(parents=True, exist_ok=True)
    for table in report.tables:
        atomic_write_text(out / f"{table.key}.csv", table.frame.to_csv(index=False))
    # a previous report into the same folder may have had tables or figures this one has not
    stale = [f"{k}.csv" for k in set(TABLE_KEYS) - {t.key for t in report.tables}]
    drawn = {f.name for f in report.figures}
    stale += [f"{n}.{ext}" for n in FIGURE_NAMES if n not in drawn for ext in ("png", "svg", "pdf")]
    for name in stale:
        (out / name).unlink(missing_ok=True)
    atomic_write_text(out / "report.md", render.to_markdown(report))
    atomic_write_text(out / "report.tex", render.to_latex(report))
    atomic_write_text(out / "report_standalone.tex", render.to_latex_standalone(report))
    atomic_write_text(out / "report.html", render.to_html(report))


def default_out(path: Path, studies: list[StudyRecords]) -> Path:
    """``<run>/report`` for a single run, else ``<path>/report``."""
    if len(studies) == 1 and len(studies[0].runs) == 1:
        return studies[0].runs[0] / "report"
    return (path if path.is_dir() else path.parent) / "report"


def report(path: Path, options: Options, out: Path | None = None) -> tuple[list[StudyReport], list[str]]:
    """Build and write the report of every study under ``path``; returns the reports and load warnings."""
    studies, skipped = load_studies(path)
    out = out or default_out(path, studies)
    reports = []
    for study in studies:
        names = [st.name for st in studies]
        label = study.name if names.count(study.name) == 1 else f"{study.name}-{study.runs[0].name}"
        out_dir = out if len(studies) == 1 else out / _safe(label)
        rep = build_report(study, options, out_dir)
        write_outputs(rep)
        reports.append(rep)
    return reports, skipped


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "study"
