"""A writer of synthetic study records in the documented format (docs/architecture.md, "Study records"),
with known effects, shared by the report tests; and tests of reading such records back."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from tinyab.analysis.records import find_runs, load_studies, read_records_csv
from tinyab.errors import UserError

INIT, WD = "init.scheme", "optim.weight_decay"
CLASS_NAMES = [
    "goldfish",
    "tabby cat",
    "bullfrog",
    "school bus",
    "lemon",
    "espresso",
    "barn",
    "pizza",
    "alp",
    "acorn",
]


def study_spec(name: str = "init_vs_wd", kind: str = "search", **extra) -> dict:
    spec = {
        "name": name,
        "question": "Does variance scaling beat Xavier, and does weight decay help?",
        "kind": kind,
        "metric": "val_top1",
        "mode": "max",
        "seeds": 5,
        "params": {
            INIT: {"role": "scientific", "type": "grid", "values": ["xavier", "variance_scaling"]},
            WD: {"role": "scientific", "type": "grid", "values": [5e-5, 5e-4]},
            "optim.lr": {"role": "fixed", "value": 0.1},
        },
    }
    return spec | extra


def curve(final: float, epochs: int, rng: np.random.Generator) -> np.ndarray:
    e = np.arange(1, epochs + 1)
    return np.clip(
        final * (1 - np.exp(-e / 2.0)) / (1 - np.exp(-epochs / 2.0)) + rng.normal(0, 0.003, epochs), 0, 1
    )


def write_run(run_dir: Path, spec: dict, rows: list[dict], epochs: int = 6, rng_seed: int = 0) -> Path:
    """Write study.yaml, trials.csv, epochs.csv, per_class.csv, environment.json for ``rows``.

    Each row has trial_id, status, seed, the varied keys and ``final`` (the true final accuracy);
    pruned trials stop at half the epochs, failed ones record no metric.
    """
    rng = np.random.default_rng(rng_seed)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "study.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    trials, epoch_rows, class_rows = [], [], []
    for row in rows:
        status, final = row["status"], row.pop("final")
        n_ep = epochs // 2 if status == "pruned" else epochs
        t = {k: v for k, v in row.items()}
        if status == "failed":
            t |= {
                "best_val_top1": np.nan,
                "final_val_top1": np.nan,
                "final_train_top1": np.nan,
                "best_epoch": np.nan,
                "epochs_run": 0,
                "error": "RuntimeError: CUDA out of memory",
            }
        else:
            val = curve(final, epochs, rng)[:n_ep]
            train = np.clip(val + 0.05, 0, 1)
            t |= {
                "best_val_top1": val.max(),
                "final_val_top1": val[-1],
                "final_train_top1": train[-1],
                "best_epoch": int(val.argmax()) + 1,
                "epochs_run": n_ep,
                "error": "",
            }
            for e in range(n_ep):
                epoch_rows.append(
                    {
                        "trial_id": row["trial_id"],
                        "epoch": e + 1,
                        "train_loss": 3 - 2 * train[e],
                        "train_top1": train[e],
                        "val_loss": 3 - 2 * val[e],
                        "val_top1": val[e],
                        "val_top5": min(1.0, val[e] + 0.2),
                        "lr": 0.1 * 0.5 * (1 + np.cos(np.pi * e / epochs)),
                        "resolution": 32 if e < epochs // 2 else 64,
                        "seconds": 1.0,
                        "images_per_s": 500.0,
                    }
                )
            for c, name in enumerate(CLASS_NAMES):
                class_rows.append(
                    {
                        "trial_id": row["trial_id"],
                        "class_index": c,
                        "wnid": f"n0{c:07d}",
                        "name": name,
                        "accuracy": float(np.clip(t["best_val_top1"] + (c - 4.5) * 0.04, 0, 1)),
                    }
                )
        t |= {"wall_seconds": 10.0 * n_ep, "device": "cpu", "node": "localhost"}
        trials.append(t)
    pd.DataFrame(trials).to_csv(run_dir / "trials.csv", index=False)
    pd.DataFrame(epoch_rows).to_csv(run_dir / "epochs.csv", index=False)
    pd.DataFrame(class_rows).to_csv(run_dir / "per_class.csv", index=False)
    (run_dir / "environment.json").write_text(json.dumps({"python": "3.11", "packages": {"torch": "2.14"}}))
    return run_dir


def factorial_rows(
    seeds: int = 5,
    init_effect: float = 0.03,
    wd_effect: float = 0.01,
    interaction: float = 0.0,
    noise: float = 0.005,
    seed_sd: float = 0.01,
    rng_seed: int = 0,
) -> list[dict]:
    """init × wd × seeds with known effects; seed effects are shared across arms (pairing helps)."""
    rng = np.random.default_rng(rng_seed)
    seed_effect = rng.normal(0, seed_sd, seeds)
    rows = []
    for init in ("xavier", "variance_scaling"):
        for wd in (5e-5, 5e-4):
            vs, big = init == "variance_scaling", wd == 5e-4
            mean = 0.35 + init_effect * vs + wd_effect * big + interaction * (vs and big)
            for s in range(seeds):
                rows.append(
                    {
                        "trial_id": f"t{len(rows):04d}",
                        "status": "completed",
                        "seed": s,
                        INIT: init,
                        WD: wd,
                        "final": mean + seed_effect[s] + rng.normal(0, noise),
                    }
                )
    return rows


def write_factorial(run_dir: Path, **kwargs) -> Path:
    return write_run(run_dir, study_spec(), factorial_rows(**kwargs))


def write_sampled_search(run_dir: Path, trials_per_arm: int = 24, rng_seed: int = 0) -> Path:
    """init (grid) × log-uniform weight decay (nuisance) with an optimum near 5e-4, some trials pruned,
    and optuna.db written through Optuna's storage like the driver: one study per arm, the arm's values in
    the study's ``arm`` user attribute."""
    import optuna
    from optuna.distributions import FloatDistribution

    rng = np.random.default_rng(rng_seed)
    spec = study_spec("wd_search")
    spec["params"][WD] = {"role": "nuisance", "type": "loguniform", "low": 1e-5, "high": 1e-2}
    rows = []
    for init in ("xavier", "variance_scaling"):
        for _ in range(trials_per_arm):
            wd = float(10 ** rng.uniform(-5, -2))
            final = 0.35 + 0.03 * (init == "variance_scaling") - 0.01 * (np.log10(wd) + 3.3) ** 2
            row = {"trial_id": f"t{len(rows):04d}", "status": "completed", "seed": 0, INIT: init, WD: wd}
            rows.append(row | {"final": final + rng.normal(0, 0.004)})
    worst = np.argsort([r["final"] for r in rows])[: len(rows) // 4]
    for i in worst:
        rows[i]["status"] = "pruned"
    write_run(run_dir, spec, [dict(r) for r in rows])
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    trials = pd.read_csv(run_dir / "trials.csv")
    for i, init in enumerate(("xavier", "variance_scaling")):  # as the driver does: one Optuna study per arm
        study = optuna.create_study(
            storage=f"sqlite:///{run_dir / 'optuna.db'}",
            study_name=f"wd_search [{i}] {INIT}={init}",
            direction="maximize",
        )
        study.set_user_attr("arm", {INIT: init})
        done = trials[(trials["status"] == "completed") & (trials[INIT] == init)]
        study.add_trials(
            optuna.trial.create_trial(
                params={WD: r[WD]},
                distributions={WD: FloatDistribution(1e-5, 1e-2, log=True)},
                value=r["best_val_top1"],
            )
            for r in done.to_dict("records")
        )
    return run_dir


def write_ablation(root: Path, effects: dict[str, float], seeds: int = 4, rng_seed: int = 0) -> Path:
    """An ablation as the driver leaves it: tune/ and rerun/ runs sharing one study.yaml (kind: ablation).

    ``effects`` maps arm -> true change of accuracy against the baseline; re-runs share seeds.
    """
    rng = np.random.default_rng(rng_seed)
    arms = ["baseline", *effects]
    spec = {"name": "ablate_aug", "question": "What does each augmentation contribute?", "kind": "ablation",
            "metric": "val_top1", "mode": "max", "seeds": list(range(seeds)), "baseline_arm": "baseline",
            "params": {"arm": {"role": "scientific", "type": "grid", "values": arms},
                       "lr": {"role": "nuisance", "type": "loguniform", "low": 0.01, "high": 1.0}},
            "arms": {a: {"levels": {}, "set": {}} for a in arms}}  # fmt: skip
    seed_effect = rng.normal(0, 0.01, seeds)
    tune = [{"trial_id": f"u{i}", "arm": a, "phase": "tune", "status": "completed", "seed": 100, "lr": lr,
             "final": 0.3 + rng.normal(0, 0.01)}
            for i, (a, lr) in enumerate((a, lr) for a in arms for lr in (0.05, 0.2))]  # fmt: skip
    rerun = [{"trial_id": f"r{a}{s}", "arm": a, "phase": "rerun", "status": "completed", "seed": s, "lr": 0.1,
              "final": 0.4 + effects.get(a, 0.0) + seed_effect[s] + rng.normal(0, 0.003)}
             for a in arms for s in range(seeds)]  # fmt: skip
    write_run(root / "tune", spec, tune)
    write_run(root / "rerun", spec, rerun)
    return root


def test_find_runs_discovers_nested_runs(tmp_path: Path) -> None:
    write_factorial(tmp_path / "init_vs_wd" / "run1")
    write_factorial(tmp_path / "init_vs_wd" / "run2", rng_seed=1)
    (tmp_path / "other").mkdir()
    assert find_runs(tmp_path) == [tmp_path / "init_vs_wd" / "run1", tmp_path / "init_vs_wd" / "run2"]
    studies, skipped = load_studies(tmp_path)
    assert len(studies) == 1 and skipped == []
    trials = studies[0].trials
    assert len(trials) == 40 and trials["trial_id"].is_unique  # pooled runs keep distinct ids
    assert studies[0].varied_keys() == [INIT, WD]
    assert studies[0].distribution(WD) == "grid" and studies[0].listed_values(WD) == [5e-5, 5e-4]


def test_both_ways_of_writing_a_distribution_are_read(tmp_path: Path) -> None:
    spec = study_spec(params={INIT: {"role": "scientific", "choice": ["a", "b"]},
                              WD: {"role": "nuisance", "loguniform": [1e-5, 1e-2]}})  # fmt: skip
    rows = [{"trial_id": "t0", "status": "completed", "seed": 0, INIT: "a", WD: 1e-4, "final": 0.3}]
    studies, _ = load_studies(write_run(tmp_path / "run", spec, rows))
    assert (studies[0].distribution(INIT), studies[0].distribution(WD)) == ("choice", "loguniform")
    assert studies[0].listed_values(INIT) == ["a", "b"]


def test_cut_last_line_is_dropped_with_a_warning(tmp_path: Path) -> None:
    run = write_factorial(tmp_path / "run")
    text = (run / "trials.csv").read_text()
    (run / "trials.csv").write_text(text[: len(text) - 25])  # a killed writer: last row cut mid-line
    studies, _ = load_studies(run)
    assert len(studies[0].trials) == 19
    assert any("last line is incomplete" in w for w in studies[0].warnings)
    assert any("not finished yet" in w for w in studies[0].warnings)  # its epochs are ignored


def test_malformed_rows_are_counted(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("a,b\n1,2\n3,4,5\n6,7\n")
    warn: list[str] = []
    frame = read_records_csv(path, warn)
    assert frame["a"].tolist() == [1, 6] and warn == [f"{path}: 1 malformed row(s) ignored"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("- just\n- a list\n", "expected a mapping"),
        ("name: [unclosed\n", "not valid YAML"),
        ("name: x\nparams: [1]\n", "params: expected a mapping"),
    ],
)
def test_bad_study_yaml_names_the_file(tmp_path: Path, content: str, message: str) -> None:
    run = write_factorial(tmp_path / "run")
    (run / "study.yaml").write_text(content)
    with pytest.raises(UserError, match=message) as info:
        load_studies(tmp_path)
    assert "study.yaml" in str(info.value)


def test_empty_and_missing_folders(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no tinyab records found"):
        load_studies(tmp_path)
    with pytest.raises(UserError, match="no such file or folder"):
        load_studies(tmp_path / "nope")
    run = write_factorial(tmp_path / "run")
    (run / "trials.csv").write_text("trial_id,status,seed\n")
    with pytest.raises(UserError, match="no finished trials"):
        load_studies(tmp_path)
