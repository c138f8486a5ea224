"""Per-trial overhead of ``tinyab search`` against calling the training function directly, in one run.

The same trials (the ``smoke`` recipe, a few seeds, short runs on the mini data) are trained twice: once
by calling ``tinyab.train.engine.train`` in a loop, once through ``run_search`` (Ray Tune, Optuna in
SQLite, the driver's records), with the same torch threads and the same uint8 cache. The per-trial
overhead (target <= 1 s) is (search wall time - direct wall time) / trials, where the search's wall time
covers everything but starting Ray (reported apart: it is paid once per search, not per trial). On a
busy machine the engine's run-to-run noise can exceed the overhead, so the same trials also run with an
instant training function (same epochs and reports, no compute), whose search time is all overhead.

    python benchmarks/search_overhead.py --trials 6 --epochs 2
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time
from pathlib import Path

from common import add_data_argument

from tinyab.config import load_recipe
from tinyab.study.plan import search_plan
from tinyab.study.ray_runtime import ray_session
from tinyab.study.run import RunOptions, run_study
from tinyab.study.spec import SearchStudy, build_study


def instant_train(recipe, on_epoch=None, **_):
    """The engine's signature and reports, without the compute: isolates what the search adds."""
    from tinyab.train.engine import TrainResult

    history = []
    for epoch in range(1, recipe.epochs + 1):
        metrics = {"epoch": epoch, "train_loss": 1.0, "train_top1": 0.5, "val_loss": 1.0, "val_top1": 0.5}
        metrics.update(val_top5=0.9, lr=0.1, resolution=32, seconds=0.0, images_per_s=0.0)
        history.append(metrics)
        if on_epoch is not None:
            on_epoch(metrics)
    return TrainResult("completed", 0.5, 1, 0.5, 0.5, len(history), history, [], "cpu")


def search_time(plan, session, data: str, train_fn=None) -> tuple[float, list[float]]:
    """Wall seconds of one whole search (plan, trials, records, summary) on the Ray already started,
    and of each trial as the driver recorded it (start to finish, in trial order)."""
    with tempfile.TemporaryDirectory() as results:
        started = time.perf_counter()
        quiet = RunOptions("default", "search_overhead.py", data=data, train_fn=train_fn, out=lambda _: None)
        outcome = run_study(plan, Path(results) / "run", session, quiet)
        elapsed = time.perf_counter() - started
        with (outcome.run_dir / "trials.csv").open() as f:
            rows = sorted(csv.DictReader(f), key=lambda row: row["trial_id"])
    assert outcome.complete and all(row["status"] == "completed" for row in rows), rows
    return elapsed, [float(row["wall_seconds"]) for row in rows]


def direct_time(train_fn, trials: int, overrides: dict, data: str) -> list[float]:
    """Wall seconds of each trial trained by calling ``train_fn`` in this process."""
    walls = []
    for seed in range(trials):
        started = time.perf_counter()
        train_fn(load_recipe("smoke", overrides, seed=seed), data=data, progress=False)
        walls.append(time.perf_counter() - started)
    return walls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_argument(parser)
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--cpus", type=int, default=2, help="CPUs (torch threads) per trial, both sides")
    args = parser.parse_args()

    import torch

    from tinyab.train.engine import train

    overrides = {"epochs": args.epochs}
    raw = {
        "name": "overhead",
        "question": "How much does the search add per trial?",
        "recipe": "smoke",
        "overrides": overrides,
        "seeds": args.trials,
        "sampler": {"name": "random"},
        "resources": {"cpus": args.cpus, "concurrency": 1},
    }
    plan = search_plan(build_study(SearchStudy, raw, Path("search_overhead.py"), None), "default", "-")

    torch.set_num_threads(args.cpus)
    train(load_recipe("smoke", overrides, seed=0), data=args.data, progress=False)  # fills the data cache
    direct = {"engine": direct_time(train, args.trials, overrides, args.data)}
    direct["instant"] = direct_time(instant_train, args.trials, overrides, args.data)
    started = time.perf_counter()
    with ray_session(dashboard=False) as session:
        ray_start = time.perf_counter() - started
        data = str(Path(args.data).resolve())
        search = {
            "engine": search_time(plan, session, data),
            "instant": search_time(plan, session, data, instant_train),
        }

    n = args.trials
    print(f"{n} trials of smoke, {args.epochs} epochs, {args.cpus} CPU each, concurrency 1")
    print(f"Ray start (once per search): {ray_start:.1f} s")
    for name in ("engine", "instant"):
        elapsed, walls = search[name]
        overhead = (elapsed - sum(direct[name])) / n
        steady = (sum(walls[1:]) - sum(direct[name][1:])) / (n - 1)
        print(
            f"{name:<8} direct {sum(direct[name]) / n:6.2f} s/trial   search {elapsed / n:6.2f} s/trial   "
            f"overhead {overhead:+5.2f} s/trial overall (first worker start, plan, records included), "
            f"{steady:+5.2f} s/trial for trials 2..{n} (start to finish of each)"
        )


if __name__ == "__main__":
    main()
