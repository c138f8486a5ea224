"""Per-trial overhead of ``tinyab search`` against calling the training function directly, in one run.

The same trials (the ``smoke`` recipe, a few seeds, short runs on the mini data) are trained twice: once
by calling ``tinyab.train.engine.train`` in a loop, once through ``run_search`` (local Ray, Optuna in
SQLite, the driver's records). Both give torch the same threads and read the same uint8 cache. Reported:
the mean wall time per trial of each, their difference (the per-trial overhead, target <= 1 s) for all
trials and after the first (the first pays for starting Ray's worker process), and the one-time cost of
starting Ray.

    python benchmarks/search_overhead.py --trials 6 --epochs 2
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tinyab.config import load_recipe
from tinyab.study.runner import run_search
from tinyab.study.spec import build_study

DEFAULT_DATA = (
    Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "tiny-imagenet-200-mini.zip"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA))
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
    study = build_study(raw, "search_overhead.py", None)

    torch.set_num_threads(args.cpus)
    train(
        load_recipe("smoke", overrides, seed=0), data=args.data, progress=False
    )  # build the data cache once
    direct = []
    for seed in range(args.trials):
        started = time.perf_counter()
        train(load_recipe("smoke", overrides, seed=seed), data=args.data, progress=False)
        direct.append(time.perf_counter() - started)

    with tempfile.TemporaryDirectory() as results:
        started = time.perf_counter()
        outcome = run_search(
            study,
            profile="default",
            source="search_overhead.py",
            results=results,
            data=args.data,
            dashboard=False,
            out=lambda line: None,
        )
        total = time.perf_counter() - started
        with (outcome.run_dir / "trials.csv").open() as f:
            search = [float(row["wall_seconds"]) for row in csv.DictReader(f)]
    assert len(search) == args.trials, "not every trial finished"

    def line(label: str, d: list[float], s: list[float]) -> str:
        d_mean, s_mean = statistics.fmean(d), statistics.fmean(s)
        return (
            f"{label:<12} direct {d_mean:6.2f} s/trial   search {s_mean:6.2f} s/trial   "
            f"overhead {s_mean - d_mean:+6.2f} s/trial"
        )

    print(f"{args.trials} trials of smoke, {args.epochs} epochs, {args.cpus} CPU each, concurrency 1")
    print(line("all trials", direct, search))
    print(line("trials 2..n", direct[1:], search[1:]))
    outside = total - sum(search)
    print(
        f"search wall time {total:.1f} s, of which outside trials (Ray start, plan, summary): {outside:.1f} s"
    )


if __name__ == "__main__":
    main()
