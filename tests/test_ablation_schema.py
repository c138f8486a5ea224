"""Ablation files: validation (one line naming file and field, exit code 2), design expansion, plan."""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats

from helpers.studies import edited as edited_study
from tinyab.cli import main
from tinyab.config import Recipe, load_recipe
from tinyab.records import TrialRecord
from tinyab.study import catalog
from tinyab.study.arms import Arm
from tinyab.study.budget import DEFAULT_SEED_SD, ablation_budget
from tinyab.study.plan import rerun_plan, tune_plan
from tinyab.study.run import best_configs
from tinyab.study.spec import AblationStudy

SMALL: dict[str, Any] = {
    "name": "tiny",
    "question": "Do weight decay and flips matter?",
    "recipe": "smoke",
    "overrides": {"epochs": 2},
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
        "smoke": {"seeds": 3, "num_samples": 2},
        "full": {"seeds": [7, 8, 9, 10], "num_samples": 4},
    },
}


def load_ablation(name: str, profile: str) -> AblationStudy:
    return catalog.load("ablation", catalog.locate("ablation", name), profile)


def build_ablation(path: Path) -> AblationStudy:
    return load_ablation(str(path), "smoke")


def recipe(ablation: AblationStudy, arm: Arm, seed: int, nuisance: dict | None = None) -> Recipe:
    return load_recipe(ablation.trial_recipe(arm, nuisance or {}, seed))


def arm_named(ablation: AblationStudy, name: str) -> Arm:
    return next(a for a in ablation.arms() if a.name == name)


def write(tmp_path: Path, data: dict[str, Any], name: str = "tiny.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def edited(**changes: Any) -> dict[str, Any]:
    """SMALL with dotted-path changes (a value of None deletes the key)."""
    return edited_study(SMALL, **changes)


def test_seed_study_resolves_with_the_required_arms_and_shared_seeds() -> None:
    for profile in ("smoke", "full"):
        ablation = load_ablation("seed_study", profile)
        names = [a.name for a in ablation.arms()]
        assert names == [
            "baseline",
            "init=xavier",
            "weight_decay=none",
            "dropout=none",
            "augmentation=none",
            "lr_schedule=constant",
            "resolution=fixed_64",
        ]
        base = recipe(ablation, ablation.arms()[0], 0)
        assert base.schedule.name == "clr" and base.init.scheme == "variance_scaling"
        assert base.optim.weight_decay > 0 and base.model.dropout > 0 and base.augment.flip
        assert len(base.resolution) > 1
        arms = {a.name: recipe(ablation, a, 0) for a in ablation.arms()}
        assert arms["init=xavier"].init.scheme == "xavier"
        assert arms["weight_decay=none"].optim.weight_decay == 0
        assert arms["dropout=none"].model.dropout == 0
        assert arms["augmentation=none"].augment.crop == "none" and not arms["augmentation=none"].augment.flip
        assert arms["lr_schedule=constant"].schedule.name == "constant"
        assert arms["resolution=fixed_64"].resolution == [[1, 64]]
        # the nuisance sets CLR's max_lr, except in the constant-LR arm where it sets optim.lr
        constant = recipe(ablation, arm_named(ablation, "lr_schedule=constant"), 0, {"peak_lr": 0.123})
        clr = recipe(ablation, arm_named(ablation, "dropout=none"), 0, {"peak_lr": 0.123})
        assert constant.optim.lr == 0.123 and constant.schedule.max_lr == base.schedule.max_lr
        assert clr.schedule.max_lr == 0.123 and clr.optim.lr == base.optim.lr
    smoke = load_ablation("seed_study", "smoke")
    assert len(smoke.seed_list) >= 3 and smoke.num_samples >= 1
    assert recipe(smoke, smoke.arms()[0], 0).data.classes == 10


def test_one_at_a_time_expands_to_arms_times_common_seeds(tmp_path: Path) -> None:
    ablation = load_ablation(str(write(tmp_path, SMALL)), "smoke")
    arms = ablation.arms()
    assert [a.name for a in arms] == [
        "baseline",
        "weight_decay=none",
        "flip=off",
        "init=xavier",
        "init=orthogonal",
    ]
    for arm in arms[1:]:
        assert len(arm.levels) == 1  # one component changed at a time
    assert ablation.seed_list == [0, 1, 2]
    best = {a.name: {"lr": 0.1 + i} for i, a in enumerate(arms)}
    rerun = rerun_plan(ablation, "smoke", "x", best)
    slots = rerun.slots()
    assert len(slots) == len(arms) * 3
    assert {(rerun.arms[s.arm].label["arm"], s.seed) for s in slots} == set(
        itertools.product(best, [0, 1, 2])
    )
    for index, arm in enumerate(rerun.arms):  # the same seeds in every arm, each with its own best value
        assert sorted(s.seed for s in slots if s.arm == index) == [0, 1, 2]
        assert arm.label == {"arm": arm.label["arm"], "phase": "rerun", **best[arm.label["arm"]]}
        assert arm.recipe({}, 1).optim.lr == pytest.approx(best[arm.label["arm"]]["lr"])
    # the family a report and sequential seeds judge: every arm against the baseline, paired by seed
    from tinyab.study.growth import family

    members = family(rerun)
    assert [m.name for m in members] == [f"{a.name} vs baseline" for a in arms[1:]]
    assert all(m.b == (0,) and m.others == () for m in members)
    # tuning: the same budget in every arm, on a seed that is not a compared seed
    tune = tune_plan(ablation, "smoke", "x")
    per_arm = {i: [s.seed for s in tune.slots() if s.arm == i] for i in range(len(arms))}
    assert all(seeds == [ablation.tune_seed] * 2 for seeds in per_arm.values())
    assert ablation.tune_seed not in ablation.seed_list


def test_full_factorial_and_explicit_designs(tmp_path: Path) -> None:
    factorial = load_ablation(str(write(tmp_path, edited(design="full_factorial"))), "full")
    names = [a.name for a in factorial.arms()]
    assert len(names) == 2 * 2 * 3 and len(set(names)) == len(names)
    assert "weight_decay=none+flip=off+init=orthogonal" in names
    assert factorial.seed_list == [7, 8, 9, 10]
    both = recipe(factorial, arm_named(factorial, "weight_decay=none+flip=off"), 0)
    assert both.optim.weight_decay == 0 and not both.augment.flip and both.init.scheme == "variance_scaling"
    explicit = edited(design=[{"name": "bare", "levels": {"weight_decay": "none", "flip": "off"}}])
    ablation = load_ablation(str(write(tmp_path, explicit)), "smoke")
    assert [a.name for a in ablation.arms()] == ["baseline", "bare"]
    assert ablation.arms()[1].overrides == {"optim.weight_decay": 0.0, "augment.flip": False}


def _tuned(arm: str, status: str, top1: float, lr: float) -> TrialRecord:
    epochs = [{"epoch": 1, "train_loss": 1.0, "val_loss": 1.0, "val_top1": top1}]
    values = {"arm": arm, "phase": "tune", "lr": lr}
    return TrialRecord.from_epochs("t", status, 1000, values, epochs, "val_top1")


def test_best_configs_use_only_completed_tuning_trials(tmp_path: Path) -> None:
    plan = tune_plan(load_ablation(str(write(tmp_path, SMALL)), "smoke"), "smoke", "x")
    records = [
        _tuned("a", "completed", 0.30, 0.1),
        _tuned("a", "completed", 0.35, 0.2),
        _tuned("a", "failed", 0.90, 0.3),
        _tuned("b", "pruned", 0.50, 0.5),
        _tuned("b", "completed", float("nan"), 0.6),
        _tuned("c", "completed", 0.2, 0.7),
        _tuned("c", "completed", 0.2, 0.8),
    ]
    assert best_configs(plan, records) == {"a": {"lr": 0.2}, "c": {"lr": 0.7}}


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
    (edited(**{"profiles/smoke/seeds": 0}), "(profile smoke).seeds: expected a positive count"),
    (edited(**{"profiles/full/seeds": []}), "(profile full).seeds: expected a positive count"),
    (
        edited(**{"profiles/smoke/seeds": [1000, 1]}),
        "(profile smoke).seeds: the compared seeds must be fresh",
    ),
    (
        edited(**{"profiles/smoke/num_samples": 0}),
        "(profile smoke).num_samples: expected a positive integer",
    ),
    (
        edited(**{"profiles/smoke/overrides": {"init": {"scheme": "xavier"}}}),
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
    (edited(recipe="smok"), "recipe: unknown recipe 'smok' (did you mean 'smoke'?)"),
    (edited(**{"profiles/quick": {"seeds": 2}}), "profiles.quick: unknown profile"),
    (edited(trials_per_arm=3), "trials_per_arm: unknown key"),
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
    assert err.startswith(f"tinyab: error: {path}")
    assert message in err
    assert not results.exists()


def test_unknown_name_lists_the_available_ablations(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ablate", "seed_stdy", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert (
        "unknown ablation 'seed_stdy' (did you mean 'seed_study'?)" in err and "available: seed_study" in err
    )


def budget(ablation: AblationStudy, study_dir: Path | None):
    return ablation_budget(ablation, tune_plan(ablation, "smoke", "x"), "smoke", "x", None, study_dir)


def _number(line: str, before: str) -> float:
    """The number (in points) that ends right before ``before`` in ``line``."""
    return float(line.split(before)[0].split()[-1])


def test_plan_prints_size_and_the_mde_of_a_paired_t_test(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, SMALL)
    assert (
        main(["ablate", str(path), "--profile", "smoke", "--results", str(tmp_path / "r"), "--dry-run"]) == 0
    )
    out = capsys.readouterr().out
    assert "arms (5, design one_at_a_time): baseline, weight_decay=none, flip=off, init=xavier" in out
    assert "tuning: 2 Optuna trials per arm on seed 1000 (nuisance: lr)" in out
    assert "seeds 0, 1, 2 (shared by all arms)" in out
    assert "runs: 10 tuning + 15 re-runs = 25" in out
    assert "seeds (family: 4 comparisons, α/m = 0.0125, power 80%):" in out
    lines = [line for line in out.splitlines() if " vs baseline: " in line]
    assert len(lines) == 4 and all("default: seed SD 1.50 points x sqrt(2)" in line for line in lines)
    # independent check by simulation: at the printed MDE a paired t-test with 3 seeds at α/m has 80% power
    n, sd = 3, DEFAULT_SEED_SD * math.sqrt(2)
    mde = _number(lines[0], " points (set a margin") / 100
    d = np.random.default_rng(1).normal(mde, sd, (400_000, n))
    t = d.mean(axis=1) / (d.std(axis=1, ddof=1) / math.sqrt(n))
    power = float((np.abs(t) > stats.t.ppf(1 - 0.0125 / 2, n - 1)).mean())
    assert power == pytest.approx(0.8, abs=0.005)


def test_plan_uses_the_spread_of_an_earlier_run_and_plans_seeds_for_the_margin(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    rows = []
    arms = {"baseline": 0.0, "weight_decay=none": -0.02, "flip=off": 0.01, "init=xavier": 0.0}
    for arm, shift in arms.items():
        for seed in (0, 1, 2, 3):
            value = 0.4 + shift + rng.normal(0, 0.01)
            rows.append({"trial_id": f"{arm}{seed}", "arm": arm, "phase": "rerun", "status": "completed",
                         "seed": seed, "best_val_top1": value, "wall_seconds": 30.0})  # fmt: skip
    rows.append({"trial_id": "x", "arm": "flip=off", "phase": "rerun", "status": "failed", "seed": 4,
                 "best_val_top1": 0.0, "wall_seconds": 3.0})  # fmt: skip
    frame = pd.DataFrame(rows)
    run = tmp_path / "tiny" / "smoke-20250101-000000" / "rerun"
    run.mkdir(parents=True)
    frame.to_csv(run / "trials.csv", index=False)
    ok = frame[frame.status == "completed"].pivot(index="seed", columns="arm", values="best_val_top1")
    ablation = build_ablation(write(tmp_path, edited(**{"profiles/smoke/margin": 0.02})))
    lines = budget(ablation, tmp_path / "tiny").seeds
    flip = next(line for line in lines if line.startswith("    flip=off vs baseline"))
    sd = float(np.std(ok["flip=off"] - ok["baseline"], ddof=1))
    assert f"SD of a paired difference {100 * sd:.2f} points (from {run.parent})" in flip
    # the fixed-design seeds: the smallest n with 80% power against 0.02 at α/4 (noncentral t, here)
    n = int(flip.split(" needs ")[1].split()[0])
    crit = lambda k: stats.t.ppf(1 - 0.0125 / 2, k - 1)  # noqa: E731
    power = lambda k: stats.nct.sf(crit(k), k - 1, 0.02 / sd * math.sqrt(k))  # noqa: E731
    assert power(n) >= 0.8 > power(n - 1)
    orthogonal = next(line for line in lines if "init=orthogonal" in line)
    assert "default: seed SD" in orthogonal  # not in the earlier run: the default, said so
    assert "compute unknown" in lines[-1]  # the earlier run lacks an arm: no full cost estimate


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
