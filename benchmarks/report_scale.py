"""`tinyab report` on 10,000 trials × 100 epochs of records in the real format; prints the time.

The records (study.yaml, trials.csv, epochs.csv, per_class.csv with 200 classes, environment.json and an
optuna.db written through Optuna's storage) are generated first and are not timed; the report (tables,
fANOVA, every figure, CSV/Markdown/LaTeX/HTML) is timed end to end in this process. Target: <= 15 s.

    python benchmarks/report_scale.py [--trials 10000] [--epochs 100] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

INIT, WD, LR = "init.scheme", "optim.weight_decay", "optim.lr"
CLASSES = 200


def write_records(run: Path, trials: int, epochs: int, seed: int = 0) -> None:
    """A search: init (grid, scientific) × log-uniform weight decay and learning rate (nuisance)."""
    rng = np.random.default_rng(seed)
    run.mkdir(parents=True, exist_ok=True)
    spec = {
        "name": "scale", "question": "Does the report scale?", "kind": "search", "metric": "val_top1",
        "mode": "max", "seeds": [0, 1, 2],
        "params": {
            INIT: {"role": "scientific", "type": "grid", "values": ["xavier", "variance_scaling"]},
            WD: {"role": "nuisance", "type": "loguniform", "low": 1e-5, "high": 1e-2},
            LR: {"role": "nuisance", "type": "loguniform", "low": 1e-3, "high": 1.0},
        },
    }  # fmt: skip
    (run / "study.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    init = np.where(np.arange(trials) % 2 == 0, "xavier", "variance_scaling")
    wd, lr = 10 ** rng.uniform(-5, -2, trials), 10 ** rng.uniform(-3, 0, trials)
    final = (
        0.35
        + 0.02 * (init == "variance_scaling")
        - 0.01 * (np.log10(wd) + 3.3) ** 2
        - 0.02 * np.log10(lr) ** 2
    )
    final = np.clip(final + rng.normal(0, 0.01, trials), 0.01, 0.99)
    status = np.where(rng.random(trials) < 0.3, "pruned", "completed")
    status[rng.random(trials) < 0.01] = "failed"
    run_epochs = np.where(status == "pruned", rng.integers(10, epochs, trials), epochs)
    run_epochs[status == "failed"] = 0
    ids = np.array([f"t{i:05d}" for i in range(trials)])
    # epoch rows, vectorised: trial index repeated per epoch it ran
    t_idx = np.repeat(np.arange(trials), run_epochs)
    ep = np.concatenate([np.arange(1, n + 1) for n in run_epochs])
    val = final[t_idx] * (1 - np.exp(-ep / 15)) + rng.normal(0, 0.003, len(ep))
    epochs_df = pd.DataFrame({
        "trial_id": ids[t_idx], "epoch": ep, "train_loss": 3 - 2 * val, "train_top1": val + 0.05,
        "val_loss": 3.1 - 2 * val, "val_top1": val, "val_top5": np.minimum(val + 0.2, 1), "lr": lr[t_idx] *
        0.5 * (1 + np.cos(np.pi * (ep - 1) / epochs)), "resolution": np.where(ep <= epochs // 2, 32, 64),
        "seconds": 1.0, "images_per_s": 500.0,
    })  # fmt: skip
    best = epochs_df.groupby("trial_id")["val_top1"].max().reindex(ids).to_numpy()
    last = epochs_df.groupby("trial_id")["val_top1"].last().reindex(ids).to_numpy()
    trials_df = pd.DataFrame({
        "trial_id": ids, "status": status, "seed": np.arange(trials) % 3, INIT: init, WD: wd, LR: lr,
        "best_val_top1": best, "final_val_top1": last, "final_train_top1": last + 0.05,
        "best_epoch": run_epochs, "epochs_run": run_epochs, "wall_seconds": run_epochs * 1.5,
        "device": "cuda:0", "node": "gpu1", "error": np.where(status == "failed", "nan loss", ""),
    })  # fmt: skip
    trials_df.to_csv(run / "trials.csv", index=False)
    epochs_df.to_csv(run / "epochs.csv", index=False)
    done = np.flatnonzero(status != "failed")
    pc = pd.DataFrame({
        "trial_id": np.repeat(ids[done], CLASSES), "class_index": np.tile(np.arange(CLASSES), len(done)),
        "wnid": np.tile([f"n{c:08d}" for c in range(CLASSES)], len(done)),
        "name": np.tile([f"class {c}" for c in range(CLASSES)], len(done)),
        "accuracy": np.clip(np.repeat(best[done], CLASSES) + rng.normal(0, 0.1, len(done) * CLASSES), 0, 1),
    })  # fmt: skip
    pc.to_csv(run / "per_class.csv", index=False)
    (run / "environment.json").write_text(json.dumps({"benchmark": True}))
    _write_optuna(run / "optuna.db", trials_df[trials_df["status"] == "completed"])


def _write_optuna(db: Path, done: pd.DataFrame) -> None:
    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(storage=f"sqlite:///{db}", study_name="scale", direction="maximize")
    dists = {
        INIT: CategoricalDistribution(["xavier", "variance_scaling"]),
        WD: FloatDistribution(1e-5, 1e-2, log=True),
        LR: FloatDistribution(1e-3, 1.0, log=True),
    }
    study.add_trials(
        optuna.trial.create_trial(
            params={k: r[k] for k in dists}, distributions=dists, value=r["best_val_top1"]
        )
        for r in done.to_dict("records")
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10_000)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument(
        "--keep", type=Path, help="write (or reuse) the records here instead of a temp folder"
    )
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="tinyab-report-scale-"))
    run = root / "scale" / "run1"
    try:
        if not (run / "trials.csv").is_file():
            t0 = time.perf_counter()
            write_records(run, args.trials, args.epochs)
            took = time.perf_counter() - t0
            print(f"records: {args.trials} trials x {args.epochs} epochs written in {took:.1f} s")
        from tinyab.cli import main as cli

        t0, c0 = time.perf_counter(), time.process_time()
        code = cli(["report", str(run), "--format", "csv", "--out", str(root / "report")])
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        print(f"tinyab report: {wall:.1f} s wall, {cpu:.1f} s CPU (exit {code}; target <= 15 s)")
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
