"""Writers of synthetic study records in the documented format (docs/architecture.md, "Study records"),
with known effects, shared by the report tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

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
