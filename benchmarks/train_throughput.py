"""Training images/s: tinyab's data path against the standard torchvision pipeline, in one run.

Both sides train the same model with the same optimiser, batch size and device. The baseline is what most
notebooks do: an ``ImageFolder`` over the extracted JPEGs, decoded every epoch, torchvision transforms
(reflect-padded random crop, flip, resize, normalise) and a ``DataLoader`` with worker processes. tinyab keeps
the whole dataset as uint8 on the device and augments whole batches there.

    python benchmarks/train_throughput.py --model resnet_small --stem cifar --px 32
    python benchmarks/train_throughput.py --model resnet18 --stem imagenet --px 64
    python benchmarks/train_throughput.py --model resnet18 --stem cifar --px 64 --device cuda   # bf16

Needs torch and torchvision only (no Ray, no Optuna): it runs on a GPU machine as it is.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import zipfile
from pathlib import Path

import torch
from common import add_data_argument, timed_steps, tinyab_batches
from torch.utils.data import DataLoader
from torchvision import datasets, transforms

from tinyab.config import load_recipe
from tinyab.data import Batch
from tinyab.data.batches import IMAGENET_MEAN, IMAGENET_STD
from tinyab.train.engine import Trainer, build_trainer


def torchvision_batches(root: Path, trainer: Trainer, px: int, workers: int):
    """The standard pipeline: JPEG decode + per-image transforms in DataLoader workers, every epoch."""
    pipeline = transforms.Compose(
        [
            transforms.RandomCrop(64, padding=4, padding_mode="reflect"),
            transforms.RandomHorizontalFlip(),
            transforms.Resize(px, antialias=True),
            transforms.ToTensor(),
            transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )
    dataset = datasets.ImageFolder(root / "train", transform=pipeline)
    wanted = set(range(trainer.num_classes))
    dataset.samples = [s for s in dataset.samples if s[1] in wanted]
    loader = DataLoader(
        dataset,
        batch_size=trainer.recipe.batch_size,
        shuffle=True,
        drop_last=True,
        num_workers=workers,
        pin_memory=trainer.device.type == "cuda",
        persistent_workers=workers > 0,
    )
    while True:
        for images, labels in loader:
            images = images.to(trainer.device, non_blocking=True)
            images = images.contiguous(memory_format=torch.channels_last)
            yield Batch(images=images, labels=labels.to(trainer.device, non_blocking=True), mix=None)


def extract_train_split(zip_path: Path, target: Path, classes: int | None = None) -> Path:
    """The train JPEGs extracted under ``target`` (only the first ``classes`` of ``wnids.txt`` when
    given); returns the dataset's top folder, with ``train/<wnid>/images/*.JPEG`` as ImageFolder reads."""
    with zipfile.ZipFile(zip_path) as archive:
        names = archive.namelist()
        members = [m for m in names if "/train/" in m and not m.endswith("/")]
        if classes is not None:
            (wnids_file,) = (n for n in names if n.endswith("wnids.txt"))
            wanted = set(archive.read(wnids_file).decode().split()[:classes])
            members = [m for m in members if m.split("/train/")[1].split("/")[0] in wanted]
        archive.extractall(target, members=[m for m in members if not m.startswith("/") and ".." not in m])
    return target / "tiny-imagenet-200"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_data_argument(parser)
    parser.add_argument("--model", default="resnet_small")
    parser.add_argument("--stem", default="cifar", choices=["cifar", "imagenet"])
    parser.add_argument("--px", type=int, default=32)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--classes", type=int, default=200)
    parser.add_argument("--steps", type=int, default=30, help="timed steps per side")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per side")
    parser.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 2))
    parser.add_argument("--device", default=None, help="cpu or cuda (default: CUDA when available)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    recipe = load_recipe(
        "smoke",
        {
            "batch_size": args.batch,
            "data": {"classes": args.classes},
            "model": {"arch": args.model, "stem": args.stem},
            "resolution": [[1, args.px]],
            "augment": {"crop": "pad", "pad": 4, "flip": True},
        },
    )
    setup = time.perf_counter()
    trainer = build_trainer(recipe, data=args.data, device=args.device, progress=False)
    setup = time.perf_counter() - setup
    print(
        f"model {args.model} ({args.stem} stem), {args.px} px, batch {args.batch}, device {trainer.device}"
        f"{' (bf16 autocast)' if trainer.autocast else ''}, {len(trainer.train_y)} train images"
    )
    ours_runs, theirs_runs = [], []
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(args.data)
        root = data if data.is_dir() else extract_train_split(data, Path(tmp))
        baseline_trainer = build_trainer(recipe, data=args.data, device=args.device, progress=False)
        ours_batches = tinyab_batches(trainer, args.px)
        theirs_batches = torchvision_batches(root, baseline_trainer, args.px, args.workers)
        # Alternate the two sides so a change in machine load affects both alike; report medians.
        for _ in range(args.rounds):
            ours_runs.append(timed_steps(trainer, ours_batches, args.steps, args.warmup))
            theirs_runs.append(timed_steps(baseline_trainer, theirs_batches, args.steps, args.warmup))
    ours, theirs = statistics.median(ours_runs), statistics.median(theirs_runs)
    print(f"tinyab data path           {ours:10.1f} images/s   (one-time decode/cache load {setup:.1f} s)")
    print(f"torchvision DataLoader ({args.workers}w) {theirs:10.1f} images/s")
    print(f"ratio                      {ours / theirs:10.2f}x")


if __name__ == "__main__":
    main()
