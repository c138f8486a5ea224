"""The pruning audit of `tinyab report` on synthetic records with fixed learning curves: epochs saved by a
pruned run, and Optuna's replay on an unpruned run checked against an independent percentile rule."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from helpers.curves import BASE, EPOCHS, KINDS, WARMUP, average_curve, curve, expected_pruning
from helpers.records import study_spec
from tinyab.analysis.model import Options
from tinyab.analysis.pruning import audit_table
from tinyab.analysis.report import report
from tinyab.records.reader import load_studies

SCHEME = "init.scheme"
SEEDS = [s for s, kind in enumerate(KINDS) if kind != "broken"]


def pruner(name: str = "median", warmup: int = WARMUP, **options: float) -> dict:
    return {"name": name, "warmup_epochs": warmup, "options": options or {"n_startup_trials": 2}}


def write_curves(run_dir: Path, config: dict, stops: dict[str, dict[int, int]] | None = None) -> None:
    """The fixed curves of helpers.curves as a run's records: one arm per init scheme, trial ids in
    (seed, arm) order as the driver numbers them; a curve in ``stops`` ends pruned at that epoch, the
    broken seed fails before its first epoch."""
    spec = study_spec(
        "curves",
        params={SCHEME: {"role": "scientific", "type": "grid", "values": list(BASE)}},
        pruner=config,
        resolved_recipe={"epochs": EPOCHS},
    )
    run_dir.mkdir(parents=True)
    (run_dir / "study.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    trials, epochs = [], []
    for seed, kind in enumerate(KINDS):
        for arm, scheme in enumerate(BASE):
            trial_id = f"t{2 * seed + arm:04d}"
            row = {"trial_id": trial_id, "seed": seed, SCHEME: scheme}
            if kind == "broken":
                trials.append(row | {"status": "failed", "epochs_run": 0, "best_val_top1": np.nan})
                continue
            ran = (stops or {}).get(scheme, {}).get(seed, EPOCHS)
            values = [curve(scheme, seed, e) for e in range(1, ran + 1)]
            status = "pruned" if ran < EPOCHS else "completed"
            trials.append(row | {"status": status, "epochs_run": ran, "best_val_top1": max(values)})
            epochs += [
                {
                    "trial_id": trial_id,
                    "epoch": e,
                    "val_top1": v,
                    "val_top1_ema": average_curve(scheme, seed, e),
                }
                for e, v in enumerate(values, 1)
            ]
    pd.DataFrame(trials).to_csv(run_dir / "trials.csv", index=False)
    pd.DataFrame(epochs).to_csv(run_dir / "epochs.csv", index=False)


def reference_stops(
    scheme: str, seeds: list[int], warmup: int, n_startup: int, keep: float, values_of: Callable = curve
) -> dict[int, int]:
    """Independent rule of Optuna's percentile pruner (median: keep = 50) within one arm, one trial at a
    time: past the warm-up and before the last epoch, a trial stops when its best value so far is below
    the (100 - keep)th percentile of the completed trials' values at that epoch, once ``n_startup`` (and
    at least one) have completed."""
    completed: list[int] = []
    stops = {}
    for seed in seeds:
        for epoch in range(warmup + 1, EPOCHS):
            best = max(values_of(scheme, seed, e) for e in range(1, epoch + 1))
            values = [values_of(scheme, s, epoch) for s in completed]
            if len(completed) >= max(n_startup, 1) and best < np.percentile(values, 100 - keep):
                stops[seed] = epoch
                break
        else:
            completed.append(seed)
    return stops


def test_reference_rule_is_the_median_rule_of_the_search_tests() -> None:
    for scheme in BASE:
        assert reference_stops(scheme, SEEDS, WARMUP, 2, 50) == expected_pruning(scheme, list(range(7)), 2)


def test_a_pruned_run_alone_shows_epochs_saved_per_arm_and_in_total(tmp_path: Path) -> None:
    stops = {scheme: expected_pruning(scheme, SEEDS, 2) for scheme in BASE}
    write_curves(tmp_path / "pruned", pruner(), stops)
    (study,), _ = load_studies(tmp_path)
    table, notes = audit_table(study)
    frame = table.frame.set_index("arm")
    for scheme in BASE:
        epochs = sum(stops[scheme].get(s, EPOCHS) for s in SEEDS)
        skipped = sum(EPOCHS - e for e in stops[scheme].values())
        row = frame.loc[scheme]
        assert (row["trials"], row["pruned"], row["epochs"]) == (len(KINDS), len(stops[scheme]), epochs)
        assert row["planned"] == EPOCHS * len(KINDS)
        assert row["saved"] == pytest.approx(skipped / (EPOCHS * len(KINDS)))
    total = frame.loc["all arms"]
    assert total["epochs"] == frame.loc[list(BASE), "epochs"].sum()
    assert total["saved"] == pytest.approx(frame.loc[list(BASE), "saved"].mean())
    assert "replay_saved" not in frame.columns and "No unpruned run" in table.note and notes == []
    assert frame.loc[list(BASE), "pruner"].eq("median(n_startup_trials=2) after 2 epochs").all()


@pytest.mark.parametrize(
    ("config", "keep"),
    [
        (pruner(), 50),
        (pruner("percentile", warmup=0, percentile=25.0, n_startup_trials=0), 25),
        (pruner("percentile", warmup=WARMUP, percentile=40.0, n_startup_trials=1), 40),
    ],
)
def test_replay_on_an_unpruned_run_matches_the_independent_rule(
    tmp_path: Path, config: dict, keep: float
) -> None:
    write_curves(tmp_path / "full", {"name": "none"})
    write_curves(tmp_path / "pruned", config)
    (study,), _ = load_studies(tmp_path)
    frame = audit_table(study)[0].frame.set_index("arm")
    warmup, n_startup = config["warmup_epochs"], config["options"].get("n_startup_trials", 0)
    skipped = 0
    for scheme in BASE:
        stops = reference_stops(scheme, SEEDS, warmup, n_startup, keep)
        final = {s: max(curve(scheme, s, e) for e in range(1, EPOCHS + 1)) for s in SEEDS}
        best = max(final, key=final.__getitem__)
        others = [s for s in SEEDS if s != best]
        positions = [reference_stops(scheme, [*others[:p], best, *others[p:]], warmup, n_startup, keep)
                     for p in range(len(SEEDS))]  # fmt: skip
        row = frame.loc[scheme]
        arm_skipped = sum(EPOCHS - e for e in stops.values())
        skipped += arm_skipped
        assert row["replay_saved"] == pytest.approx(arm_skipped / (EPOCHS * len(SEEDS)))
        assert row["best_stopped"] == (best in stops)
        assert row["best"] == pytest.approx(final[best])
        assert row["best_kept"] == pytest.approx(max(v for s, v in final.items() if s not in stops))
        assert row["lost"] == pytest.approx(final[best] - row["best_kept"])
        assert row["chance_best_stopped"] == pytest.approx(np.mean([best in p for p in positions]))
    assert frame.loc["all arms", "replay_saved"] == pytest.approx(skipped / (2 * EPOCHS * len(SEEDS)))


def test_warm_up_protects_a_late_best_that_an_early_pruner_loses(tmp_path: Path) -> None:
    """The 'late' curve is poor until the warm-up ends and best afterwards: with no warm-up the replay
    stops it wherever it comes except first, and says what that loses."""
    write_curves(tmp_path / "full", {"name": "none"})
    write_curves(tmp_path / "early", pruner(warmup=0, n_startup_trials=1))
    write_curves(tmp_path / "late", pruner(warmup=WARMUP, n_startup_trials=1))
    (study,), _ = load_studies(tmp_path)
    frame = audit_table(study)[0].frame.set_index(["run", "arm"])
    early, late = frame.loc[("early", "variance_scaling")], frame.loc[("late", "variance_scaling")]
    assert early["best_stopped"] and early["chance_best_stopped"] == pytest.approx(5 / 6)
    assert early["lost"] == pytest.approx(0.1)  # late ends at 0.82, the best good curve at 0.72
    assert not late["best_stopped"] and late["chance_best_stopped"] == 0 and late["lost"] == 0


def test_the_replay_judges_the_pruners_own_metric(tmp_path: Path) -> None:
    """A pruner on val_top1_ema is replayed on that column: the weight average ranks the late curve
    first from epoch 1, so with no warm-up it survives there and is stopped on val_top1."""
    write_curves(tmp_path / "full", {"name": "none"})
    write_curves(tmp_path / "raw", pruner(warmup=0, n_startup_trials=1))
    write_curves(tmp_path / "average", pruner(warmup=0, n_startup_trials=1) | {"metric": "val_top1_ema"})
    (study,), _ = load_studies(tmp_path)
    frame = audit_table(study)[0].frame.set_index(["run", "arm"])
    for run, values_of in (("raw", curve), ("average", average_curve)):
        for scheme in BASE:
            row = frame.loc[(run, scheme)]
            stops = reference_stops(scheme, SEEDS, 0, 1, 50, values_of)
            assert row["replay_saved"] == pytest.approx(
                sum(EPOCHS - e for e in stops.values()) / (EPOCHS * len(SEEDS))
            )
            assert row["best_stopped"] == (KINDS.index("late") in stops)
    assert frame.loc[("raw", "variance_scaling"), "best_stopped"]
    assert not frame.loc[("average", "variance_scaling"), "best_stopped"]
    assert (
        frame.loc[("average", "xavier"), "pruner"]
        == "median(n_startup_trials=1) on val_top1_ema after 0 epochs"
    )


def test_report_shows_the_audit_only_for_pruned_studies_and_names_what_it_cannot_replay(
    tmp_path: Path,
) -> None:
    write_curves(tmp_path / "s" / "full", {"name": "none"})
    write_curves(tmp_path / "s" / "asha", {"name": "asha", "options": {"reduction_factor": 2}})
    (rep,), _ = report(tmp_path / "s", Options(figures=False))
    audit = next(t for t in rep.tables if t.key == "pruning_audit")
    assert "replay_saved" not in audit.frame.columns
    assert any("Ray's scheduler; not replayed" in n for n in rep.notes)
    assert "## Pruning audit" in (tmp_path / "s" / "report" / "report.md").read_text()
    (plain,), _ = report(tmp_path / "s" / "full", Options(figures=False))
    assert "pruning_audit" not in [t.key for t in plain.tables]


def test_runs_whose_folders_share_a_name_keep_their_own_trials(tmp_path: Path) -> None:
    """The pooled ``run`` column of ``again/full`` ends like ``full``'s own path: each run keeps its own."""
    write_curves(tmp_path / "full", {"name": "none"})
    write_curves(tmp_path / "again" / "full", pruner(), {"xavier": {0: 3}})
    (study,), _ = load_studies(tmp_path)
    frame = audit_table(study)[0].frame.set_index("arm")
    assert frame.loc[list(BASE), "trials"].tolist() == [len(KINDS), len(KINDS)]
    assert frame.loc["xavier", "pruned"] == 1 and frame.loc["variance_scaling", "pruned"] == 0
    assert frame["run"].eq((tmp_path / "again" / "full").as_posix()).all()


def test_the_replay_judges_a_configuration_by_its_first_seed_as_the_driver_does(tmp_path: Path) -> None:
    """Three configurations (learning rates) × two seeds, one arm. The second seed of each lies below
    everything finished before it; only first seeds are judged: configuration 1's first seed is
    stopped at epoch 1 and its second seed is not run, the others' second seeds run whole."""
    level = {0.1: 0.50, 0.2: 0.20, 0.3: 0.55}
    spec = study_spec(
        "configs",
        params={"optim.lr": {"role": "nuisance", "type": "loguniform", "low": 0.05, "high": 0.5}},
        num_samples=3,
        seeds=2,
        resolved_recipe={"epochs": EPOCHS},
    )
    for name, config in (("full", {"name": "none"}), ("pruned", pruner(warmup=0, n_startup_trials=1))):
        run_dir = tmp_path / name
        run_dir.mkdir()
        (run_dir / "study.yaml").write_text(yaml.safe_dump(spec | {"pruner": config}, sort_keys=False))
        trials, epochs = [], []
        for index, (lr, seed) in enumerate((lr, seed) for lr in level for seed in (0, 1)):
            values = [level[lr] + 0.02 * e - 0.06 * seed for e in range(1, EPOCHS + 1)]
            trial_id = f"t{index:04d}"
            trials.append({"trial_id": trial_id, "seed": seed, "optim.lr": lr, "status": "completed",
                           "epochs_run": EPOCHS, "best_val_top1": max(values)})  # fmt: skip
            epochs += [{"trial_id": trial_id, "epoch": e, "val_top1": v} for e, v in enumerate(values, 1)]
        pd.DataFrame(trials).to_csv(run_dir / "trials.csv", index=False)
        pd.DataFrame(epochs).to_csv(run_dir / "epochs.csv", index=False)
    (study,), _ = load_studies(tmp_path)
    row = audit_table(study)[0].frame.set_index("arm").loc["all"]
    assert row["replay_saved"] == pytest.approx(((EPOCHS - 1) + EPOCHS) / (6 * EPOCHS))
    assert row["best"] == pytest.approx(0.55 + 0.02 * EPOCHS) and not row["best_stopped"]
    assert row["chance_best_stopped"] == 0  # the best configuration leads every epoch, wherever it comes
