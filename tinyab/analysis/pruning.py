"""Pruning audit: the epochs a run's pruner saved, and what the same pruner does to complete curves.

A pruned run shows what pruning saved but not what it cost: a stopped trial's final value is never seen.
An unpruned run of the same study (the reader pools it with the pruned one) holds every curve to the end,
so the pruned run's pruner is replayed on those curves with Optuna itself, arm by arm, as the driver
drives it: every epoch reported, ``should_prune`` asked only after the warm-up, never obeyed at the last
epoch. Whether an arm's best trial survives depends on when it comes (the first trials are judged against
few others), so it is also replayed with the best trial moved to each position among the others.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tinyab.analysis.design import arm_label
from tinyab.analysis.model import StudyReport, Table
from tinyab.records.reader import StudyRecords, read_study

POSITIONS = 20  # at most this many positions of the best trial, evenly spread, behind its chance of a stop
OPTUNA_PRUNERS = {
    "median": "MedianPruner",
    "percentile": "PercentilePruner",
    "successive_halving": "SuccessiveHalvingPruner",
    "hyperband": "HyperbandPruner",
    "patient": "PatientPruner",
}


@dataclass(frozen=True)
class Curve:
    """One trial of an unpruned run: the metric at each epoch and its objective (NaN unless completed).
    A curve not ``judged`` is a later seed of the configuration of the judged curve before it, and
    shares its fate, as the driver runs it (:attr:`tinyab.study.plan.StudyPlan.judged_by`)."""

    values: tuple[float, ...]
    objective: float
    judged: bool = True


def build_pruner(config: dict[str, Any]) -> Any:
    """The Optuna pruner a run's ``study.yaml`` names, built as the driver builds it (analysis may not
    import the study package); None for ``none`` and for Ray's ``asha``, which Optuna cannot replay."""
    import optuna

    name = config.get("name", "none")
    if name not in OPTUNA_PRUNERS:
        return None
    build = getattr(optuna.pruners, OPTUNA_PRUNERS[name])
    options = dict(config.get("options") or {})
    if name != "patient":
        return build(**options)
    wrapped, inner = config.get("wrapped"), None
    if wrapped:
        inner = getattr(optuna.pruners, OPTUNA_PRUNERS[wrapped])(**(config.get("wrapped_options") or {}))
    return build(inner, **options)


def replay(curves: list[Curve], config: dict[str, Any], maximize: bool, planned: int) -> list[int]:
    """Epochs each curve would run under the pruner of ``config``, trials one at a time in list order;
    a curve not judged runs whole, or not at all (0) when its configuration's judged curve was stopped."""
    import optuna
    from optuna.trial import TrialState

    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no log line per in-memory study
    try:
        study = optuna.create_study(
            direction="maximize" if maximize else "minimize", pruner=build_pruner(config)
        )
    finally:
        optuna.logging.set_verbosity(verbosity)
    warmup = int(config.get("warmup_epochs") or 0)
    ran: list[int] = []
    configuration_stopped = False
    for curve in curves:
        if not curve.judged and configuration_stopped:
            ran.append(0)
            continue
        trial = study.ask()
        stop = None
        for epoch, value in enumerate(curve.values, 1):
            if not np.isfinite(value):  # an epoch not evaluated: the driver neither reports nor asks
                continue
            trial.report(value, epoch)
            # asked at the last epoch too (successive halving records its rung there), never obeyed
            if curve.judged and epoch > warmup and trial.should_prune() and epoch < planned:
                stop = epoch
                break
        if curve.judged:
            configuration_stopped = stop is not None
        if stop is not None:
            study.tell(trial, state=TrialState.PRUNED)
        elif np.isfinite(curve.objective):
            study.tell(trial, curve.objective)
        else:
            study.tell(trial, state=TrialState.FAIL)
        ran.append(stop or len(curve.values))
    return ran


def describe(config: dict[str, Any]) -> str:
    """'percentile(percentile=25, n_startup_trials=0) after 3 epochs': the pruner in one cell (with
    'on val_top1_ema' when it judges a metric of its own)."""

    def call(name: str, options: dict[str, Any] | None) -> str:
        shown = (f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in (options or {}).items())
        return f"{name}({', '.join(shown)})"

    text = call(config.get("name", "none"), config.get("options"))
    if config.get("wrapped"):
        text += f" of {call(config['wrapped'], config.get('wrapped_options'))}"
    judged = f" on {config['metric']}" if config.get("metric") else ""
    return f"{text}{judged} after {int(config.get('warmup_epochs') or 0)} epochs"


def _rows_of(frame: pd.DataFrame, run: Path) -> pd.DataFrame:
    """One run's rows of a pooled frame, whose ``run`` column is the run's path below the report's root
    (the longest one that ends the run's path: ``none`` is also the end of ``sub/none``); an ablation's
    re-runs are left out: it prunes only while tuning."""
    path = run.as_posix()
    labels = [str(label) for label in frame["run"].unique()]
    own = max(
        (label for label in labels if path == label or path.endswith("/" + label)), key=len, default=None
    )
    rows = frame[frame["run"].astype(str) == own]
    return rows[rows["phase"].astype(str) != "rerun"] if "phase" in rows.columns else rows


def _arms(trials: pd.DataFrame, keys: list[str]) -> list[str]:
    """Each trial's arm as the pruner sees it: its scientific values (one Optuna study per arm)."""
    if not keys:
        return ["all"] * len(trials)
    return [arm_label(v, keys) for v in zip(*(trials[k] for k in keys), strict=True)]


def curves_by_arm(study: StudyRecords, runs: list[Path], judged: str) -> dict[str, list[Curve]]:
    """Every curve of ``runs`` (unpruned runs of ``study``) by arm, in run then trial-id order: the
    ``judged`` metric (a pruner's) at each epoch, and the best of the study's metric as the objective."""
    metric, keys = _metric(study), _scientific(study)
    nuisance = [k for k, p in study.params.items() if p.get("role") == "nuisance" and k in study.trials]
    several = int(study.spec.get("num_samples") or 1) > 1  # else every trial is judged itself
    out: dict[str, list[Curve]] = {}
    if study.epochs is None or judged not in study.epochs.columns:
        return out
    for run in runs:
        trials = _rows_of(study.trials, run).sort_values("trial_id")
        epochs = _rows_of(study.epochs, run).sort_values("epoch")
        values = epochs.groupby("trial_id")[judged].apply(lambda s: tuple(map(float, s)))
        objective = trials.get(f"best_{metric}", pd.Series(np.nan, trials.index)).where(
            trials["status"] == "completed"
        )
        configurations = zip(*(trials[k] for k in nuisance), strict=True) if nuisance else [()] * len(trials)
        seen: set[tuple] = set()
        rows = zip(_arms(trials, keys), configurations, trials["trial_id"], objective, strict=True)
        for arm, configuration, trial_id, value in rows:
            first = (arm, *configuration) not in seen
            seen.add((arm, *configuration))
            if trial_id in values.index:
                curve = Curve(values[trial_id], float(value), judged=first or not several)
                out.setdefault(arm, []).append(curve)
    return out


def _groups(curves: list[Curve]) -> list[list[Curve]]:
    """The curves by configuration: each judged curve with the later seeds that follow it."""
    groups: list[list[Curve]] = []
    for curve in curves:
        if curve.judged or not groups:
            groups.append([])
        groups[-1].append(curve)
    return groups


def _replayed(curves: list[Curve], config: dict[str, Any], maximize: bool, planned: int) -> dict[str, Any]:
    """One arm's replay: epochs saved, and the fate of its best trial in trial-id order and at each
    position among the other trials."""
    objectives = np.array([c.objective for c in curves])
    lengths = np.array([len(c.values) for c in curves])
    ran = np.array(replay(curves, config, maximize, planned))
    figures: dict[str, Any] = {"replay_epochs": int(ran.sum()), "replay_of": int(lengths.sum())}
    figures["replay_saved"] = 1 - ran.sum() / lengths.sum()
    done = np.isfinite(objectives)
    if not done.any():
        return figures
    signed = np.where(done, objectives if maximize else -objectives, -np.inf)
    best = int(np.argmax(signed))
    kept = done & (ran == lengths)
    groups = _groups(curves)  # the best trial moves with its configuration
    home = next(g for g, group in enumerate(groups) if any(c is curves[best] for c in group))
    others = [group for g, group in enumerate(groups) if g != home]
    positions = sorted({round(p) for p in np.linspace(0, len(others), min(POSITIONS, len(groups)))})
    stops = []
    for p in positions:
        order = [c for group in [*others[:p], groups[home], *others[p:]] for c in group]
        at = next(i for i, c in enumerate(order) if c is curves[best])
        stops.append(replay(order, config, maximize, planned)[at] < lengths[best])
    best_kept = objectives[kept][np.argmax(signed[kept])]
    return figures | {
        "best": objectives[best],
        "best_kept": best_kept,
        "lost": abs(objectives[best] - best_kept),
        "best_stopped": bool(ran[best] < lengths[best]),
        "chance_best_stopped": float(np.mean(stops)),
    }


def _audit_run(
    study: StudyRecords, run: Path, config: dict[str, Any], planned: int, curves: dict[str, list[Curve]]
) -> list[dict[str, Any]]:
    """One pruned run's rows: one per arm, and a total when there are several."""
    keys = _scientific(study)
    trials = _rows_of(study.trials, run)
    maximize = study.spec.get("mode", "max") != "min"
    replayable = build_pruner(config) is not None
    head = {"run": _label(run, study.runs), "pruner": describe(config)}
    rows = []
    for arm, group in trials.groupby(_arms(trials, keys), sort=False):
        pruned = group[group["status"] == "pruned"]
        row = head | {
            "arm": arm,
            "trials": len(group),
            "pruned": len(pruned),
            "epochs": int(group["epochs_run"].sum()),
            "planned": planned * len(group),
            "skipped": int((planned - pruned["epochs_run"]).sum()),
        }
        row["saved"] = row["skipped"] / row["planned"]
        if replayable and arm in curves:
            row |= _replayed(curves[arm], config, maximize, planned)
        rows.append(row)
    if len(rows) > 1:
        total = head | {"arm": "all arms"}
        total |= {k: sum(r[k] for r in rows) for k in ("trials", "pruned", "epochs", "planned", "skipped")}
        total["saved"] = total["skipped"] / total["planned"]
        replayed = [r for r in rows if "replay_of" in r]
        if replayed:
            total["replay_saved"] = 1 - sum(r["replay_epochs"] for r in replayed) / sum(
                r["replay_of"] for r in replayed
            )
        rows.append(total)
    return rows


def _metric(study: StudyRecords) -> str:
    return str(study.spec.get("metric") or "val_top1")


def _scientific(study: StudyRecords) -> list[str]:
    return [k for k, p in study.params.items() if p.get("role") == "scientific" and k in study.trials.columns]


def _label(run: Path, runs: list[Path]) -> str:
    """A run's folder name, or its path when two runs share the name."""
    return run.name if [r.name for r in runs].count(run.name) == 1 else run.as_posix()


def audit_table(study: StudyRecords) -> tuple[Table | None, list[str]]:
    """The audit of every pruned run of ``study`` and its notes; no table when no run has a pruner."""
    specs = {run: read_study(run) for run in study.runs}
    pruners = {run: spec.get("pruner") or {"name": "none"} for run, spec in specs.items()}
    pruned = [run for run in study.runs if pruners[run].get("name", "none") != "none"]
    if not pruned:
        return None, []
    unpruned = [run for run in study.runs if run not in pruned]
    metric = _metric(study)
    judged = {run: str(pruners[run].get("metric") or metric) for run in pruned}
    curves_by = {m: curves_by_arm(study, unpruned, m) for m in set(judged.values())}
    rows, notes = [], []
    for run in pruned:
        curves = curves_by[judged[run]]
        epochs = (specs[run].get("resolved_recipe") or {}).get("epochs")
        planned = int(epochs or _rows_of(study.trials, run)["epochs_run"].max())
        rows += _audit_run(study, run, pruners[run], planned, curves)
        if curves and build_pruner(pruners[run]) is None:
            notes.append(f"Pruning audit: {describe(pruners[run])} is Ray's scheduler; not replayed.")
    frame = pd.DataFrame(rows).drop(columns=["skipped", "replay_epochs", "replay_of"], errors="ignore")
    note = "saved: the planned epochs that pruning skipped / all planned epochs."
    if any(curves_by.values()):
        runs = ", ".join(_label(r, study.runs) for r in unpruned)
        note += (
            f" Replay: the same pruner (Optuna, same options, warm-up and judged metric) on the complete "
            f"curves of the unpruned run {runs}, arm by arm, one trial at a time in trial-id order (with "
            f"concurrency a run judges each trial against fewer finished ones). replay_saved: the share of "
            f"that run's epochs it would skip; best: the arm's best {metric}; best_kept: the best of the "
            f"trials it lets finish (0.01 = 1 point of top-1); best_stopped: whether it stops the best "
            f"trial; chance_best_stopped: the share of the best trial's positions among the others (up to "
            f"{POSITIONS}) where it would."
        )
    else:
        note += (
            " No unpruned run of this study here to replay the pruner on: run one beside it "
            "(--set pruner.name=none) to see what pruning costs."
        )
    return Table("pruning_audit", "Pruning audit", frame, note, ("run", "planned", "lost")), notes


def add_pruning_audit(study: StudyRecords, report: StudyReport) -> None:
    """Append the audit table (when a run has a pruner) and its notes to ``report``."""
    table, notes = audit_table(study)
    if table is not None:
        report.tables.append(table)
    report.notes.extend(notes)
