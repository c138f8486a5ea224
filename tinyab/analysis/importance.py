"""Optuna's fANOVA importance of the searched hyperparameters: descriptive, not a test.

Optuna is imported here only, when a run has an ``optuna.db``; fANOVA needs scikit-learn. Large studies
are subsampled (seeded) and the forest is kept small (32 trees of depth 8) so that fANOVA costs seconds,
not minutes: its marginal variances grow with the number of leaves, and the ranking of a handful of
keys is stable at that size.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

MAX_TRIALS = 1000
N_TREES = 32
MAX_DEPTH = 8


def fanova_importance(db: Path, seed: int = 0) -> tuple[pd.DataFrame | None, str]:
    """(importance table, note). The table has one row per param: param, importance (sums to 1)."""
    try:
        import optuna
        from optuna.importance import FanovaImportanceEvaluator, get_param_importances
        from optuna.trial import TrialState
    except ImportError as err:
        return None, f"fANOVA skipped: {err.name} is not installed"
    optuna.logging.set_verbosity(logging.WARNING)
    storage = f"sqlite:///{db}"
    try:
        names = optuna.get_all_study_names(storage)
    except Exception as err:  # a locked, corrupt or foreign database: the report goes on without it
        return None, f"fANOVA skipped: cannot read {db} ({type(err).__name__})"
    if not names:
        return None, f"fANOVA skipped: {db} holds no study"
    studies = [optuna.load_study(study_name=name, storage=storage) for name in names]
    if any(len(st.directions) != 1 for st in studies):
        return None, "fANOVA skipped: the Optuna study has several objectives"
    trials = _pooled_trials(optuna, studies, TrialState.COMPLETE)
    if len(trials) < 2:
        return None, f"fANOVA skipped: {len(trials)} completed trial(s) in {db.name}"
    note = f"fANOVA over {len(trials)} completed Optuna trials"
    if len(trials) > MAX_TRIALS:
        pick = np.random.default_rng(seed).choice(len(trials), MAX_TRIALS, replace=False)
        trials = [trials[i] for i in sorted(pick)]
        note = f"fANOVA over a seeded sample of {MAX_TRIALS} of the completed Optuna trials"
    if not any(len(t.distributions) for t in trials):
        return None, "fANOVA skipped: the Optuna trials have no sampled parameters"
    sample = optuna.create_study(direction=studies[0].direction)
    sample.add_trials(trials)
    try:
        importances = get_param_importances(
            sample, evaluator=FanovaImportanceEvaluator(n_trees=N_TREES, max_depth=MAX_DEPTH, seed=seed)
        )
    except (ValueError, RuntimeError) as err:
        return None, f"fANOVA skipped: {str(err).splitlines()[0]}"
    except ImportError:
        return None, "fANOVA skipped: scikit-learn is not installed"
    if not importances:
        return None, "fANOVA skipped: no parameter varies across the Optuna trials"
    table = pd.DataFrame({"param": list(importances), "importance": list(importances.values())})
    return table, note + " (descriptive: how much of the metric's variance each key explains)"


def _pooled_trials(optuna, studies: list, complete) -> list:
    """Completed trials of every study in the database as one list.

    The search driver keeps one Optuna study per arm, with the arm's scientific values in the study's
    ``arm`` user attribute; they are added back as categorical parameters so fANOVA sees them too.
    """
    from optuna.distributions import CategoricalDistribution

    arms = [st.user_attrs.get("arm") if isinstance(st.user_attrs.get("arm"), dict) else {} for st in studies]
    levels: dict[str, list] = {}
    for arm in arms:
        for key, value in arm.items():
            if value not in levels.setdefault(key, []):
                levels[key].append(value)
    pooled = []
    for st, arm in zip(studies, arms, strict=True):
        for t in st.get_trials(deepcopy=False, states=(complete,)):
            if t.value is None:
                continue
            extra = {k: v for k, v in arm.items() if k not in t.params}
            dists = {k: CategoricalDistribution(levels[k]) for k in extra}
            pooled.append(
                optuna.trial.create_trial(
                    params={**extra, **t.params}, distributions={**dists, **t.distributions}, value=t.value
                )
            )
    return pooled
