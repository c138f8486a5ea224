"""A tiny ablation end to end: real Ray, real Optuna, the real engine on the mini data, then the report.

3 arms (baseline, no weight decay, no flips) x (2 tuning trials + 2 shared re-run seeds), 1 epoch on
10 classes at 32 px with 20 training images per class.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import optuna
import pytest
import yaml
from scipy import stats
from statsmodels.stats.multitest import multipletests

from tinyab.cli import main

pytestmark = pytest.mark.slow

ABLATION = {
    "name": "e2e_ablation",
    "question": "Do weight decay and flips matter at this tiny scale?",
    "recipe": "smoke",
    "overrides": {
        "epochs": 1,
        "resolution": [[1, 32]],
        "data": {"classes": 10, "train_per_class": 20, "val_per_class": 20},
        "eval_batch_size": 200,
    },
    "components": {
        "weight_decay": {"baseline": "5e-4", "alternatives": {"none": {"optim.weight_decay": 0.0}}},
        "flip": {"baseline": "on", "alternatives": {"off": {"augment.flip": False}}},
    },
    "nuisance": {"lr": {"key": "optim.lr", "type": "loguniform", "low": 0.05, "high": 0.4}},
    "profiles": {"smoke": {"seeds": [11, 12], "num_samples": 2, "resources": {"cpus": 1}}},
}
ARMS = ["baseline", "weight_decay=none", "flip=off"]


def rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def ablation_run(tmp_path_factory: pytest.TempPathFactory, mini_zip: Path) -> Path:
    folder = tmp_path_factory.mktemp("ablation")
    path = folder / "e2e_ablation.yaml"
    path.write_text(yaml.safe_dump(ABLATION, sort_keys=False))
    results = folder / "results"
    argv = ["ablate", str(path), "--profile", "smoke", "--data", str(mini_zip), "--results", str(results)]
    assert main([*argv, "--no-dashboard"]) == 0
    (run,) = (results / "e2e_ablation").iterdir()
    return run


def test_every_arm_gets_the_same_tuning_budget_on_one_seed(ablation_run: Path) -> None:
    tune = rows(ablation_run / "tune" / "trials.csv")
    assert sorted(r["arm"] for r in tune) == sorted(ARMS * 2)
    assert {r["phase"] for r in tune} == {"tune"} and {r["seed"] for r in tune} == {"1000"}
    assert all(r["status"] == "completed" for r in tune)
    # one Optuna study per arm, each with exactly the budget, sampling the nuisance only
    storage = f"sqlite:///{ablation_run / 'tune' / 'optuna.db'}"
    summaries = optuna.get_all_study_summaries(storage)
    assert len(summaries) == len(ARMS)
    for summary in summaries:
        study = optuna.load_study(study_name=summary.study_name, storage=storage)
        assert len(study.trials) == 2
        assert all(set(t.params) == {"lr"} and 0.05 <= t.params["lr"] <= 0.4 for t in study.trials)


def test_each_arm_is_rerun_with_its_best_lr_on_the_shared_seeds(ablation_run: Path) -> None:
    tune = rows(ablation_run / "tune" / "trials.csv")
    rerun = rows(ablation_run / "rerun" / "trials.csv")
    assert {r["phase"] for r in rerun} == {"rerun"}
    assert sorted((r["arm"], r["seed"]) for r in rerun) == sorted((a, s) for a in ARMS for s in ("11", "12"))
    assert all(r["status"] == "completed" for r in rerun)
    for arm in ARMS:
        best = max((r for r in tune if r["arm"] == arm), key=lambda r: float(r["best_val_top1"]))
        assert {r["lr"] for r in rerun if r["arm"] == arm} == {best["lr"]}
    # the trained recipes really differ by arm (per-epoch records exist for every re-run)
    epochs = rows(ablation_run / "rerun" / "epochs.csv")
    assert {e["trial_id"] for e in epochs} == {r["trial_id"] for r in rerun}
    study = yaml.safe_load((ablation_run / "rerun" / "study.yaml").read_text())
    assert study["kind"] == "ablation" and study["baseline_arm"] == "baseline"
    assert list(study["arms"]) == ARMS and study["arms"]["flip=off"]["set"] == {"augment.flip": False}
    assert study == yaml.safe_load((ablation_run / "tune" / "study.yaml").read_text())


def test_report_ablation_table_equals_an_independent_computation(ablation_run: Path) -> None:
    from tinyab.analysis.design import resolve_design
    from tinyab.analysis.tables import Rule, ablation_table
    from tinyab.records.reader import load_studies

    (study,), _ = load_studies(ablation_run)
    table = ablation_table(study, resolve_design(study, None, None), Rule(0.05)).set_index("arm")
    rerun = rows(ablation_run / "rerun" / "trials.csv")
    value = {(r["arm"], int(r["seed"])): float(r["best_val_top1"]) for r in rerun}
    pvalues = {}
    for arm in ARMS[1:]:
        diff = np.array([value[("baseline", s)] - value[(arm, s)] for s in (11, 12)])
        mean = diff.mean()
        assert table.loc[arm, "n"] == 2  # only the re-runs enter the comparison
        assert table.loc[arm, "contribution"] == pytest.approx(mean, abs=1e-12)
        if np.ptp(diff) > 0:
            half = stats.t.ppf(1 - 0.05 / 2 / 2, 1) * diff.std(ddof=1) / math.sqrt(2)  # simultaneous, m = 2
            assert table.loc[arm, "ci_low"] == pytest.approx(mean - half, abs=1e-9)
            assert table.loc[arm, "ci_high"] == pytest.approx(mean + half, abs=1e-9)
            pvalues[arm] = stats.ttest_rel(
                [value[("baseline", s)] for s in (11, 12)], [value[(arm, s)] for s in (11, 12)]
            ).pvalue
    if len(pvalues) == 2:
        adjusted = multipletests(list(pvalues.values()), method="bonferroni")[1]
        for arm, p in zip(pvalues, adjusted, strict=True):
            assert table.loc[arm, "p_adj"] == pytest.approx(p, abs=1e-9)
