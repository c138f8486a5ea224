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
    study = optuna.load_study(study_name=names[0], storage=storage)
    trials = [
        t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if t.value is not None
    ]
    if len(trials) < 2:
        return None, f"fANOVA skipped: {len(trials)} completed trial(s) in {db.name}"
    note = f"fANOVA over {len(trials)} completed Optuna trials"
    if len(trials) > MAX_TRIALS:
        pick = np.random.default_rng(seed).choice(len(trials), MAX_TRIALS, replace=False)
        trials = [trials[i] for i in sorted(pick)]
        note = f"fANOVA over a seeded sample of {MAX_TRIALS} of the completed Optuna trials"
    if len(study.directions) != 1:
        return None, "fANOVA skipped: the Optuna study has several objectives"
    sample = optuna.create_study(direction=study.direction)
    sample.add_trials(trials)
    try:
        importances = get_param_importances(
            sample, evaluator=FanovaImportanceEvaluator(n_trees=N_TREES, max_depth=MAX_DEPTH, seed=seed)
        )
    except (ValueError, RuntimeError) as err:
        return None, f"fANOVA skipped: {str(err).splitlines()[0]}"
    except ImportError:
        return None, "fANOVA skipped: scikit-learn is not installed"
    table = pd.DataFrame({"param": list(importances), "importance": list(importances.values())})
    return table, note + " (descriptive: how much of the metric's variance each key explains)"
