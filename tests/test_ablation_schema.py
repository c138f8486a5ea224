"""Ablation files: validation (one line naming file and field, exit code 2), design expansion, plan."""

from __future__ import annotations

import copy
import itertools
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats

from tinyab.cli import main
from tinyab.study.ablation import load_ablation
from tinyab.study.ablation_design import best_nuisance, rerun_trials, tuning_trials
from tinyab.study.ablation_plan import DEFAULT_SEED_SD, earlier_spread, make_plan, paired_sd
from tinyab.study.ablation_run import AblationPhase, best_from_records

SMALL: dict[str, Any] = {
    "name": "tiny",
    "question": "Do weight decay and flips matter?",
    "baseline": {"recipe": "smoke", "set": {"epochs": 2}},
    "components": {
        "weight_decay": {"baseline": "5e-4", "alternatives": {"none": {"optim.weight_decay": 0.0}}},
        "flip": {"baseline": "on", "alternatives": {"off": {"augment.flip": False}}},
        "init": {
            "alternatives": {
                "xavier": {"init.scheme": "xavier"},
                "orthogonal": {"init.scheme": "orthogonal"},
            }
        },
    },
    "nuisance": {"lr": {"key": "optim.lr", "type": "loguniform", "low": 0.05, "high": 0.5}},
    "profiles": {
        "smoke": {"seeds": 3, "trials_per_arm": 2},
        "full": {"seeds": [7, 8, 9, 10], "trials_per_arm": 4},
    },
}


def write(tmp_path: Path, data: dict[str, Any], name: str = "tiny.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def edited(**changes: Any) -> dict[str, Any]:
    """SMALL with dotted-path changes (a value of None deletes the key)."""
    data = copy.deepcopy(SMALL)
    for dotted, value in changes.items():
        *parents, last = dotted.split("/")
        node = data
        for part in parents:
            node = node[part]
        if value is None:
            node.pop(last)
        else:
            node[last] = value
    return data


def test_seed_study_resolves_with_the_required_arms_and_shared_seeds() -> None:
    for profile in ("smoke", "full"):
        ablation = load_ablation("seed_study", profile)
        names = [a.name for a in ablation.arms]
        assert names == [
            "baseline",
            "init=xavier",
            "weight_decay=none",
            "dropout=none",
            "augmentation=none",
            "lr_schedule=constant",
            "resolution=fixed_64",
        ]
        base = ablation.recipe(ablation.arms[0], 0)
        assert base.schedule.name == "clr" and base.init.scheme == "variance_scaling"
        assert base.optim.weight_decay > 0 and base.model.dropout > 0 and base.augment.flip
        assert len(base.resolution) > 1
        arms = {a.name: ablation.recipe(a, 0) for a in ablation.arms}
        assert arms["init=xavier"].init.scheme == "xavier"
        assert arms["weight_decay=none"].optim.weight_decay == 0
        assert arms["dropout=none"].model.dropout == 0
        assert arms["augmentation=none"].augment.crop == "none" and not arms["augmentation=none"].augment.flip
        assert arms["lr_schedule=constant"].schedule.name == "constant"
        assert arms["resolution=fixed_64"].resolution == [[1, 64]]
        # the nuisance sets CLR's max_lr, except in the constant-LR arm where it sets optim.lr
        constant = ablation.recipe(ablation.arm("lr_schedule=constant"), 0, {"peak_lr": 0.123})
        clr = ablation.recipe(ablation.arm("dropout=none"), 0, {"peak_lr": 0.123})
        assert constant.optim.lr == 0.123 and constant.schedule.max_lr == base.schedule.max_lr
        assert clr.schedule.max_lr == 0.123 and clr.optim.lr == base.optim.lr
    smoke = load_ablation("seed_study", "smoke")
    assert len(smoke.seeds) >= 3 and smoke.trials_per_arm >= 1
    assert smoke.recipe(smoke.arms[0], 0).data.classes == 10


def test_one_at_a_time_expands_to_arms_times_common_seeds(tmp_path: Path) -> None:
    ablation = load_ablation(str(write(tmp_path, SMALL)), "smoke")
    assert [a.name for a in ablation.arms] == [
        "baseline",
        "weight_decay=none",
        "flip=off",
        "init=xavier",
        "init=orthogonal",
    ]
    for arm in ablation.arms[1:]:
        assert len(arm.levels) == 1  # one component changed at a time
    assert ablation.seeds == [1000, 1001, 1002]
    best = {a.name: {"lr": 0.1 + i} for i, a in enumerate(ablation.arms)}
    reruns = rerun_trials(ablation.arms, ablation.seeds, best)
    assert len(reruns) == len(ablation.arms) * 3
    assert {(t.arm, t.seed) for t in reruns} == set(itertools.product(best, ablation.seeds))
    for arm in best:  # the same seeds in every arm, each with its own best nuisance value
        assert sorted(t.seed for t in reruns if t.arm == arm) == ablation.seeds
        assert all(t.nuisance == best[arm] and t.phase == "rerun" for t in reruns if t.arm == arm)
    # tuning: the same budget in every arm, on a seed that is not a re-run seed
    tuning = tuning_trials(ablation.arms, ablation.trials_per_arm, ablation.tune_seed)
    assert {len(seeds) for seeds in tuning.values()} == {2} and set(tuning) == set(best)
    assert ablation.tune_seed not in ablation.seeds


def test_full_factorial_and_explicit_designs(tmp_path: Path) -> None:
    factorial = load_ablation(str(write(tmp_path, edited(design="full_factorial"))), "full")
    names = [a.name for a in factorial.arms]
    assert len(names) == 2 * 2 * 3 and len(set(names)) == len(names)
    assert "weight_decay=none+flip=off+init=orthogonal" in names
    assert factorial.seeds == [7, 8, 9, 10]
    both = factorial.recipe(factorial.arm("weight_decay=none+flip=off"), 0)
    assert both.optim.weight_decay == 0 and not both.augment.flip and both.init.scheme == "variance_scaling"
    explicit = edited(design=[{"name": "bare", "levels": {"weight_decay": "none", "flip": "off"}}])
    ablation = load_ablation(str(write(tmp_path, explicit)), "smoke")
    assert [a.name for a in ablation.arms] == ["baseline", "bare"]
    assert ablation.arms[1].overrides == {"optim.weight_decay": 0.0, "augment.flip": False}


def test_best_nuisance_uses_only_completed_tuning_trials() -> None:
    rows = [
        {"arm": "a", "phase": "tune", "status": "completed", "best_val_top1": 0.30, "lr": 0.1},
        {"arm": "a", "phase": "tune", "status": "completed", "best_val_top1": 0.35, "lr": 0.2},
        {"arm": "a", "phase": "tune", "status": "failed", "best_val_top1": 0.90, "lr": 0.3},
        {"arm": "a", "phase": "rerun", "status": "completed", "best_val_top1": 0.99, "lr": 0.4},
        {"arm": "b", "phase": "tune", "status": "pruned", "best_val_top1": 0.50, "lr": 0.5},
        {"arm": "b", "phase": "tune", "status": "completed", "best_val_top1": float("nan"), "lr": 0.6},
        {"arm": "c", "phase": "tune", "status": "completed", "best_val_top1": 0.2, "lr": 0.7},
        {"arm": "c", "phase": "tune", "status": "completed", "best_val_top1": 0.2, "lr": 0.8},
    ]
    assert best_nuisance(rows, ["lr"], "best_val_top1", "max") == {"a": {"lr": 0.2}, "c": {"lr": 0.7}}
    assert best_nuisance(rows, ["lr"], "best_val_top1", "min")["a"] == {"lr": 0.1}


def test_phases_give_every_arm_the_same_budget_and_only_reruns_get_fresh_seeds(tmp_path: Path) -> None:
    from tinyab.study.plan import plan_trials

    ablation = load_ablation(str(write(tmp_path, SMALL)), "smoke")
    tune = AblationPhase(ablation, "tune")
    slots = plan_trials(tune)
    per_arm = {i: sum(s.arm == i for s in slots) for i in range(len(ablation.arms))}
    assert set(per_arm.values()) == {ablation.trials_per_arm}
    assert {s.seed for s in slots} == {ablation.tune_seed}
    assert tune.nuisance == ["lr"] and [a["phase"] for a in tune.arms()] == ["tune"] * 5
    rows = [
        {
            "arm": a.name,
            "phase": "tune",
            "status": "completed",
            "best_val_top1": str(0.1 * i),
            "lr": str(0.05 + i / 100),
        }
        for i, a in enumerate(ablation.arms)
    ]
    best = best_from_records(ablation, rows)
    assert best["init=xavier"] == {"lr": pytest.approx(0.08)} and isinstance(best["baseline"]["lr"], float)
    rerun = AblationPhase(ablation, "rerun", best)
    slots = plan_trials(rerun)
    assert rerun.nuisance == []  # nothing is sampled in the comparison
    assert sorted((rerun.arms()[s.arm]["arm"], s.seed) for s in slots) == sorted(
        itertools.product(best, ablation.seeds)
    )
    values = rerun.arms()[3]
    recipe = rerun.recipe_for(values, 1001)
    assert recipe.optim.lr == pytest.approx(best[values["arm"]]["lr"]) and recipe.seed == 1001
    assert recipe.init.scheme == "xavier"


BAD = [
    (
        edited(**{"components/weight_decay/alternatives/none": {"optim.weight_decay": 5.0e-4}}),
        "components.weight_decay.alternatives.none: arm 'weight_decay=none' is the same recipe as the base",
    ),
    (
        edited(**{"components/init/alternatives/xavier": {"init.schem": "xavier"}}),
        "components.init.alternatives.xavier: init.schem: unknown key (did you mean 'scheme'?)",
    ),
    (
        edited(**{"components/flip/alternatives/off": {"augment.flip": "sideways"}}),
        "components.flip.alternatives.off: augment.flip: expected true or false, got 'sideways'",
    ),
    (
        edited(**{"nuisance/lr/key": "optim.weight_decay"}),
        "nuisance.lr: 'optim.weight_decay' is also ablated (components.weight_decay.alternatives.none)",
    ),
    (
        edited(**{"nuisance/lr/key_when": {"init=xavier": "init.scheme"}}),
        "nuisance.lr: 'init.scheme' is also ablated",
    ),
    (edited(**{"profiles/smoke/seeds": 0}), "profiles.smoke.seeds: expected at least one seed, got 0"),
    (edited(**{"profiles/full/seeds": []}), "profiles.full.seeds: expected at least one seed, got []"),
    (edited(**{"profiles/smoke/seeds": [0, 1]}), "profiles.smoke.seeds: re-run seeds must be fresh"),
    (
        edited(**{"profiles/smoke/trials_per_arm": 0}),
        "profiles.smoke.trials_per_arm: the nuisance section needs",
    ),
    (
        edited(**{"profiles/smoke/set": {"init.scheme": "xavier"}}),
        "arm 'init=xavier' is the same recipe as the baseline",
    ),
    (edited(**{"nuisance/lr/low": 0.9}), "nuisance.lr.low: must be below high"),
    (edited(design="one_by_one"), "design: expected one of 'one_at_a_time', 'full_factorial' or a list"),
    (
        edited(design=[{"name": "x", "levels": {"flip": "maybe"}}]),
        "design[0].levels.flip: 'maybe' is not an alternative of flip",
    ),
    (
        edited(design=[{"name": "x", "levels": {"flip": "off"}}, {"name": "y", "levels": {"flip": "off"}}]),
        "design[1]: arm 'y' is the same recipe as arm 'x'",
    ),
    (edited(components={}), "components: expected at least one component"),
    (edited(baseline={"recipe": "smok"}), "baseline.recipe: unknown recipe 'smok' (did you mean 'smoke'?)"),
    (edited(**{"profiles/quick": {"seeds": 2}}), "profiles.quick: unknown profile"),
    (edited(seeds=3), "seeds: unknown key"),
]


@pytest.mark.parametrize(
    ("data", "message"), BAD, ids=[m.split(":")[0] + str(i) for i, (_, m) in enumerate(BAD)]
)
def test_bad_files_fail_with_one_line_naming_file_and_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], data: dict[str, Any], message: str
) -> None:
    path = write(tmp_path, data)
    results = tmp_path / "results"
    code = main(["ablate", str(path), "--profile", "smoke", "--results", str(results), "--dry-run"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"tinyab: error: {path}: ")
    assert message in err
    assert not results.exists()


def test_unknown_name_lists_the_available_ablations(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ablate", "seed_stdy", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert (
        "unknown ablation 'seed_stdy' (did you mean 'seed_study'?)" in err and "available: seed_study" in err
    )


def test_plan_prints_size_and_the_mde_of_a_paired_t_test(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, SMALL)
    assert (
        main(["ablate", str(path), "--profile", "smoke", "--results", str(tmp_path / "r"), "--dry-run"]) == 0
    )
    out = capsys.readouterr().out
    assert "arms (5, design one_at_a_time): baseline, weight_decay=none, flip=off, init=xavier" in out
    assert "tuning: 2 Optuna trials per arm on seed 0 (nuisance: lr)" in out
    assert "seeds 1000, 1001, 1002 (shared by all arms)" in out
    assert "runs: 10 tuning + 15 re-runs = 25" in out
    plan = make_plan(load_ablation(str(path), "smoke"), None, None)
    # independent check: at the MDE a paired t-test with 3 seeds has 80% power (noncentral t)
    n, d = 3, plan.mde / plan.sd_diff
    crit = stats.t.ppf(0.975, n - 1)
    power = stats.nct.sf(crit, n - 1, d * math.sqrt(n)) + stats.nct.cdf(-crit, n - 1, d * math.sqrt(n))
    assert power == pytest.approx(0.8, abs=1e-3)
    assert plan.sd_diff == pytest.approx(DEFAULT_SEED_SD * math.sqrt(2))
    assert f"{100 * plan.mde:.2f} points" in out


def test_plan_uses_the_spread_of_an_earlier_run(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    rows = []
    for arm, shift in (("baseline", 0.0), ("a", -0.02), ("b", 0.01)):
        for seed in (1000, 1001, 1002, 1003):
            rows.append(
                {
                    "trial_id": f"{arm}{seed}",
                    "arm": arm,
                    "phase": "rerun",
                    "status": "completed",
                    "seed": seed,
                    "best_val_top1": 0.4 + shift + rng.normal(0, 0.01),
                }
            )
    rows.append(
        {
            "trial_id": "x",
            "arm": "a",
            "phase": "rerun",
            "status": "failed",
            "seed": 1004,
            "best_val_top1": 0.0,
        }
    )
    frame = pd.DataFrame(rows)
    run = tmp_path / "tiny" / "smoke-20250101-000000" / "rerun"
    run.mkdir(parents=True)
    frame.to_csv(run / "trials.csv", index=False)
    ok = frame[frame.status == "completed"].pivot(index="seed", columns="arm", values="best_val_top1")
    diffs = [ok[arm] - ok["baseline"] for arm in ("a", "b")]
    expected = math.sqrt((np.var(diffs[0], ddof=1) + np.var(diffs[1], ddof=1)) / 2)
    assert paired_sd(frame, "best_val_top1") == pytest.approx(expected)
    assert earlier_spread(tmp_path / "tiny", "best_val_top1") == (pytest.approx(expected), run.parent)
    assert earlier_spread(tmp_path / "tiny", "best_val_top1", exclude=run.parent) is None
    path = write(tmp_path, SMALL)
    plan = make_plan(load_ablation(str(path), "smoke"), None, tmp_path / "tiny")
    assert plan.sd_diff == pytest.approx(expected) and str(run.parent) in plan.sd_source


def test_resume_without_an_earlier_run_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, SMALL)
    results = tmp_path / "results"
    assert (
        main(["ablate", str(path), "--profile", "smoke", "--results", str(results), "--resume", "--dry-run"])
        == 2
    )
    err = capsys.readouterr().err
    expected = f"--resume: no run of ablation tiny (profile smoke) in {results / 'tiny'} to resume"
    assert err == f"tinyab: error: {expected}\n"
    assert not results.exists()
