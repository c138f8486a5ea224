"""``tinyab search`` against a plain Ray Tune script on the same workload, in one run, alternating.

The workload is the smoke profile of ``search_spaces/init_vs_wd.yaml``: 18 trials (init scheme He or
Xavier × weight decay 5e-5, 5e-4, 5e-3 × 3 seeds) of a small ResNet (one BasicBlock per stage, widths
16-32-64-128, 3×3 stem) on the first 10 classes of the mini Tiny ImageNet at 32 px, 10 epochs each,
1 CPU per trial, two at a time.

The plain side is :data:`PLAIN_SCRIPT`, written to a temporary file and run as its own program: what
a competent user writes in about 60 lines without tinyab. Every trial decodes its images with Pillow
and resizes the whole set to 32 px once; training uses one random reflect-padded crop offset per batch
and a per-image flip, SGD with Nesterov momentum, ``OneCycleLR`` (peak 0.2), label smoothing 0.1, batch
64; evaluation at 32 px after every epoch, reported to Tune. ``reuse_actors=True``, no dashboard (as
tinyab's ``--no-dashboard``). The model is kept in PyTorch's default memory format and float32, as
the tutorials write it; ``--plain-bf16`` adds what tinyab does on a CPU with native bf16 (bf16
autocast for the training step, channels_last), two lines a user who knows of it would write. The
tinyab side is the command a user types, run as a subprocess with a fresh
``TINYAB_HOME`` (its one-time decode into the uint8 cache is counted)::

    tinyab search init_vs_wd --profile smoke --data DATA --results TMP --no-dashboard

Rounds alternate (plain, tinyab, tinyab, plain, ...) so that a change in machine load hits both sides
alike; walls are medians. Accuracy is the mean over trials of the final epoch's val top-1 (all arms
have 3 trials, so this is also the mean of the 6 arm means); tinyab's best-epoch mean is shown too.

    python benchmarks/vs_plain_ray.py --data ../shared/data/tiny-imagenet-200-mini.zip
    python benchmarks/vs_plain_ray.py --data ../shared/data/tiny-imagenet-200-mini.zip --plain-bf16
"""

from __future__ import annotations

import argparse
import csv
import functools
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import add_data_argument

PLAIN_SCRIPT = r"""
import io, json, sys, zipfile
import numpy as np, torch, torch.nn as nn, torch.nn.functional as F
import ray
from PIL import Image
from ray import tune

BF16 = sys.argv[3:] == ["bf16"]  # --plain-bf16: bf16 autocast and channels_last, two lines more
MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)

def files(z, classes, root="tiny-imagenet-200/"):  # (name, label) of the first `classes` classes
    wnids = z.read(root + "wnids.txt").decode().split()[:classes]
    train = [(n, wnids.index(n.split("/")[2])) for n in z.namelist()
             if n.startswith(root + "train/") and n.endswith(".JPEG") and n.split("/")[2] in wnids]
    rows = [line.split("\t") for line in z.read(root + "val/val_annotations.txt").decode().splitlines()]
    return train, [(root + "val/images/" + f, wnids.index(w)) for f, w, *_ in rows if w in wnids]

def load(path, classes=10, px=32):
    with zipfile.ZipFile(path) as z:
        train, val = files(z, classes)
        def decode(items):  # whole set resized to px once (Pillow's bilinear filter antialiases)
            images = [Image.open(io.BytesIO(z.read(n))).convert("RGB").resize((px, px), Image.BILINEAR)
                      for n, _ in items]
            x = torch.from_numpy(np.stack([np.asarray(im) for im in images])).permute(0, 3, 1, 2)
            return (x.float() / 255 - MEAN) / STD, torch.tensor([c for _, c in items])
        return decode(train), decode(val)

class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.c1, self.b1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout)
        self.c2, self.b2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout)
        self.short = nn.Sequential() if stride == 1 and cin == cout else nn.Sequential(
            nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
    def forward(self, x):
        return F.relu(self.b2(self.c2(F.relu(self.b1(self.c1(x))))) + self.short(x))

def resnet(classes, widths=(16, 32, 64, 128)):
    layers = [nn.Conv2d(3, widths[0], 3, 1, 1, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU()]
    for i, w in enumerate(widths):
        layers.append(Block(widths[max(i - 1, 0)], w, 1 if i == 0 else 2))
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(widths[-1], classes))

def trial(config, data):
    torch.manual_seed(config["seed"])
    (xt, yt), (xv, yv) = load(data)
    model = resnet(10).to(memory_format=torch.channels_last if BF16 else torch.contiguous_format)
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            (nn.init.kaiming_normal_ if config["init"] == "he" else nn.init.xavier_normal_)(m.weight)
    opt = torch.optim.SGD(model.parameters(), lr=0.2, momentum=0.9, nesterov=True, weight_decay=config["wd"])
    epochs, bs, steps = 10, 64, len(xt) // 64
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.2, total_steps=epochs * steps)
    for epoch in range(epochs):
        model.train()
        perm = torch.randperm(len(xt))
        for i in range(steps):
            idx = perm[i * bs:(i + 1) * bs]
            dy, dx = torch.randint(0, 9, (2,)).tolist()  # one crop offset per batch
            x = F.pad(xt[idx], (4, 4, 4, 4), mode="reflect")[:, :, dy:dy + 32, dx:dx + 32]
            x = torch.where(torch.rand(len(x), 1, 1, 1) < 0.5, x.flip(3), x)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=BF16):
                loss = F.cross_entropy(model(x).float(), yt[idx], label_smoothing=0.1)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        model.eval()
        with torch.no_grad():
            hits = sum((model(xv[i:i + 500]).argmax(1) == yv[i:i + 500]).sum().item()
                       for i in range(0, len(xv), 500))
        tune.report({"epoch": epoch + 1, "val_top1": hits / len(xv)})

if __name__ == "__main__":
    ray.init(include_dashboard=False)
    grid = {"init": tune.grid_search(["he", "xavier"]), "wd": tune.grid_search([5e-5, 5e-4, 5e-3]),
            "seed": tune.grid_search([0, 1, 2])}
    tuner = tune.Tuner(tune.with_resources(tune.with_parameters(trial, data=sys.argv[1]), {"cpu": 1}),
                       param_space=grid,
                       tune_config=tune.TuneConfig(max_concurrent_trials=2, reuse_actors=True),
                       run_config=tune.RunConfig(storage_path=sys.argv[2], verbose=0))
    results = tuner.fit()
    print(json.dumps({"final": [r.metrics["val_top1"] for r in results],
                      "best": [float(r.metrics_dataframe["val_top1"].max()) for r in results],
                      "seconds": [r.metrics["time_total_s"] for r in results]}))
"""


def tinyab_command() -> list[str]:
    """The console script next to this interpreter (what a user types), else ``python -m tinyab``."""
    script = Path(sys.executable).parent / "tinyab"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "tinyab"]


def run(command: list[str], env: dict[str, str], log: Path) -> float:
    """Run ``command``; its wall seconds. Output goes to ``log``; a failure prints the log's tail."""
    started = time.perf_counter()
    with log.open("w") as out:
        code = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, env=env).returncode
    wall = time.perf_counter() - started
    if code != 0:
        sys.exit(f"{' '.join(command[:3])} ... exited {code}; last lines:\n{log.read_text()[-3000:]}")
    return wall


def plain_round(
    data: str, work: Path, bf16: bool = False
) -> tuple[float, list[float], list[float], list[float]]:
    script = work / "plain_tune.py"
    script.write_text(PLAIN_SCRIPT.lstrip())
    storage = work / "ray_results"
    log = work / "plain.log"
    command = [sys.executable, str(script), data, str(storage), *(["bf16"] if bf16 else [])]
    wall = run(command, dict(os.environ), log)
    result = json.loads(log.read_text().strip().splitlines()[-1])
    return wall, result["final"], result["best"], result["seconds"]


def tinyab_round(data: str, work: Path) -> tuple[float, list[float], list[float], list[float]]:
    results = work / "results"
    env = {**os.environ, "TINYAB_HOME": str(work / "home")}
    command = [*tinyab_command(), "search", "init_vs_wd", "--profile", "smoke", "--data", data]
    wall = run([*command, "--results", str(results), "--no-dashboard"], env, work / "tinyab.log")
    (trials_csv,) = results.rglob("trials.csv")
    with trials_csv.open() as f:
        rows = list(csv.DictReader(f))
    if len(rows) != 18 or any(row["status"] != "completed" for row in rows):
        sys.exit(f"{trials_csv}: expected 18 completed trials, got {[row['status'] for row in rows]}")
    final = [float(r["final_val_top1"]) for r in rows]
    return wall, final, [float(r["best_val_top1"]) for r in rows], [float(r["wall_seconds"]) for r in rows]


def mean(values: list[float]) -> float:
    return sum(values) / len(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_argument(parser)
    parser.add_argument("--rounds", type=int, default=2, help="rounds per side (order ABBA ABBA ...)")
    parser.add_argument(
        "--plain-bf16",
        action="store_true",
        help="the plain script trains under bf16 autocast in channels_last too (what tinyab does on a "
        "CPU with native bf16)",
    )
    args = parser.parse_args()
    data = str(Path(args.data).resolve())
    if not Path(data).is_file():
        sys.exit(f"{data}: not found (pass --data)")

    sides = {"plain": functools.partial(plain_round, bf16=args.plain_bf16), "tinyab": tinyab_round}
    order = [("plain", "tinyab") if r % 2 == 0 else ("tinyab", "plain") for r in range(args.rounds)]
    walls: dict[str, list[float]] = {"plain": [], "tinyab": []}
    final: dict[str, list[float]] = {"plain": [], "tinyab": []}
    best: dict[str, list[float]] = {"plain": [], "tinyab": []}
    trial: dict[str, list[float]] = {"plain": [], "tinyab": []}
    for r, pair in enumerate(order, 1):
        for side in pair:
            work = Path(tempfile.mkdtemp(prefix=f"vs-plain-{side}-"))
            try:
                wall, accs, bests, seconds = sides[side](data, work)
            finally:
                shutil.rmtree(work, ignore_errors=True)
            walls[side].append(wall)
            final[side] += accs
            best[side] += bests
            trial[side] += seconds
            print(
                f"round {r} {side:<6} {wall:7.1f} s   mean final val top-1 {mean(accs):.4f}   "
                f"(best epoch {mean(bests):.4f})   trial {mean(seconds):.2f} s on average",
                flush=True,
            )
    plain, ours = statistics.median(walls["plain"]), statistics.median(walls["tinyab"])
    acc_plain, acc_ours = mean(final["plain"]), mean(final["tinyab"])
    print()
    print(
        "| side | wall (median) | walls | mean trial (start to end) | mean final val top-1 "
        "| mean best-epoch val top-1 | trials |"
    )
    print("|---|---|---|---|---|---|---|")
    name = "plain Ray Tune script" + (" (bf16, channels_last)" if args.plain_bf16 else "")
    for side, wall in ((name, plain), ("tinyab search", ours)):
        key = "plain" if side.startswith("plain") else "tinyab"
        runs = ", ".join(f"{w:.1f}" for w in walls[key])
        print(
            f"| {side} | {wall:.1f} s | {runs} | {mean(trial[key]):.2f} s | {mean(final[key]):.4f} | "
            f"{mean(best[key]):.4f} | {len(final[key])} |"
        )
    ratio = ours / plain
    print()
    print(
        f"wall ratio tinyab/plain {ratio:.2f}x (target <= 0.80: {'met' if ratio <= 0.8 else 'NOT met'}); "
        f"accuracy {acc_ours:.4f} vs {acc_plain:.4f} "
        f"({'not lower: met' if acc_ours >= acc_plain else 'lower: NOT met'})"
    )


if __name__ == "__main__":
    main()
