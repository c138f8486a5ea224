"""One prepared GPU run: throughput, model FLOP utilisation, fractional-GPU packing and a short real
training, printed as one table. Needs torch and torchvision (plus PyYAML for tinyab's recipes); no
Ray, Optuna or pandas.

On the GPU machine (one H100/H200, under 8 minutes; copy the mini zip into a git-ignored folder of the
checkout first, the tinyab package is found from the checkout):

    python benchmarks/gpu_check.py --data data/tiny-imagenet-200-mini.zip

Rows of the table:

- ``resnet18 ...``: resnet18 with the 3×3 stem at 64 px, bf16 autocast, channels_last, batch 256,
  trained from a torchvision ``DataLoader`` (JPEG decode and per-image transforms in worker
  processes, as train_throughput.py), from tinyab's device-side data path, and from the same with
  ``torch.compile``. Images/s, model FLOP utilisation (MFU: training FLOP per image = 3 × the forward
  pass's, counted by ``torch.utils.flop_counter``, over the GPU's dense bf16 peak), the ratio to the
  DataLoader row, the peak memory. Targets: tinyab ≥ 15,000 images/s and ≥ 5× the DataLoader.
- ``pack N=...``: N = 1, 2, 4, 8 processes training resnet_small at 32 px at the same time, each
  capped at 1/N of the GPU's memory with ``torch.cuda.set_per_process_memory_fraction`` (what a
  search with ``gpus: 1/N`` per trial does): aggregate images/s (all images over the span from the
  first start to the last end of the timed steps), its ratio to N = 1, the largest peak memory of one
  process. Target: N = 4 gives ≥ 2.5× the images/s of N = 1.
- ``seed_net2 3 epochs``: ``tinyab.train.engine.train`` on the recipe (its first 3 epochs are at
  32 px; evaluation at 64 px); the check passes when the training loss of epoch 3 is below epoch 1's.

``--tiny`` runs every row in seconds on CPU (or the GPU when there is one): a small subset,
resnet_small at 32 px in place of resnet18, ``torch.compile`` with the ``eager`` backend, N = 1, 2,
seed_net2 at width 0.25 and 16 px. A test runs it so that this script cannot rot.
The exit status is 1 when a row fails or the loss does not fall; missed speed targets are reported.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

HERE = Path(__file__).resolve().parent
# Dense bf16 peaks (TFLOP/s) of the GPUs this is meant for, by a part of the device name.
PEAK_TFLOPS = {"H100": 989.4, "H200": 989.4, "A100": 312.0, "L40S": 362.0, "L4": 121.0}


def prepare_imports() -> None:
    """tinyab from this checkout when it is not installed; a silent stand-in for tqdm (progress bars
    only) when the machine lacks it; a clear message when PyYAML is missing."""
    if importlib.util.find_spec("tinyab") is None:
        sys.path.insert(0, str(HERE.parent))
    if importlib.util.find_spec("tqdm") is None:

        class _NoBar:
            def __init__(self, iterable: Any = None, **_: Any) -> None:
                self.iterable = iterable

            def __iter__(self) -> Any:
                return iter(self.iterable or [])

            def update(self, *_: Any) -> None: ...
            def close(self) -> None: ...
            def __enter__(self) -> _NoBar:
                return self

            def __exit__(self, *_: Any) -> None: ...

        sys.modules["tqdm"] = types.SimpleNamespace(tqdm=_NoBar)  # type: ignore[assignment]
    if importlib.util.find_spec("yaml") is None:
        sys.exit("gpu_check: PyYAML is needed (tinyab.config reads recipes with it): pip install pyyaml")


@dataclass
class Setup:
    """What each row runs; ``tiny`` shrinks everything to seconds on a CPU."""

    data: str
    device: str
    tiny: bool
    classes: int | None = None  # None: all 200 classes of the mini set
    train_per_class: int | None = None
    val_per_class: int | None = None
    model: str = "resnet18"
    px: int = 64
    batch: int = 256
    steps: int = 50
    warmup: int = 10
    workers: int = 16
    compile_backend: str = "inductor"
    pack_model: str = "resnet_small"
    pack_px: int = 32
    pack_batch: int = 128
    pack_steps: int = 300
    pack_warmup: int = 30
    pack_procs: list[int] = field(default_factory=lambda: [1, 2, 4, 8])
    seed_net2: dict[str, Any] = field(default_factory=lambda: {"epochs": 3})

    @classmethod
    def create(cls, args: argparse.Namespace) -> Setup:
        device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
        if not args.tiny:
            return cls(args.data, device, False, classes=200, workers=min(16, os.cpu_count() or 2))
        subset = {"classes": 4, "train_per_class": 32, "val_per_class": 4}
        return cls(
            args.data,
            device,
            True,
            **subset,
            model="resnet_small",
            px=32,
            batch=32,
            steps=3,
            warmup=1,
            workers=1,
            compile_backend="eager",
            pack_batch=32,
            pack_steps=3,
            pack_warmup=1,
            pack_procs=[1, 2],
            seed_net2={
                "epochs": 3,
                "batch_size": 32,
                "data": subset,
                "model": {"width": 0.25, "dropout": 0.0},
                "resolution": [[3, 16]],
                "eval_px": 16,
                "schedule": {"max_lr": 0.05},
                "augment": {"crop": "none", "color_jitter": 0.0},
            },
        )

    def data_overrides(self) -> dict[str, Any]:
        keys = ("classes", "train_per_class", "val_per_class")
        return {k: getattr(self, k) for k in keys if getattr(self, k) is not None}

    def recipe(self, model: str, px: int, batch: int, **extra: Any):
        from tinyab.config import load_recipe

        overrides = {
            "batch_size": batch,
            "data": self.data_overrides(),
            "model": {"arch": model, "stem": "cifar"},
            "resolution": [[1, px]],
            "augment": {"crop": "pad", "pad": 4, "flip": True},
            **extra,
        }
        return load_recipe("smoke", overrides)


@dataclass
class Row:
    name: str
    images_per_s: float | None = None
    mfu: float | None = None
    ratio: str = ""
    peak_bytes: int | None = None
    result: str = ""
    failed: bool = False


def peak_tflops(device: torch.device, given: float | None) -> float | None:
    if given is not None or device.type != "cuda":
        return given
    name = torch.cuda.get_device_name(device)
    return next((peak for part, peak in PEAK_TFLOPS.items() if part in name), None)


def train_flops_per_image(model: torch.nn.Module, px: int, device: torch.device) -> float:
    """3 × the FLOP of one forward pass (forward + backward ≈ 3 forwards), counted by torch."""
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.zeros(1, 3, px, px, device=device).contiguous(memory_format=torch.channels_last)
    training = model.training
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    model.train(training)
    return 3.0 * counter.get_total_flops()


def reset_peak(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory(device: torch.device) -> int:
    """Peak CUDA memory allocated by this process, or on CPU its peak resident set size (VmHWM: unlike
    ``ru_maxrss``, not inherited from the parent that started this process)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device)
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def throughput_rows(setup: Setup, device: torch.device, peak: float | None, root: Path) -> list[Row]:
    """DataLoader, tinyab, tinyab + torch.compile on the same model, batch and device."""
    from common import timed_steps, tinyab_batches
    from train_throughput import torchvision_batches

    from tinyab.train.engine import build_trainer

    what = f"{setup.model} 3x3 stem {setup.px}px {'bf16 ' if device.type == 'cuda' else ''}channels_last"
    recipe = setup.recipe(setup.model, setup.px, setup.batch)
    rows: list[Row] = []
    flops = None

    def measure(name: str, make_batches, compile_backend: str | None = None) -> Row:
        nonlocal flops
        reset_peak(device)
        trainer = build_trainer(recipe, data=setup.data, device=setup.device, progress=False)
        if flops is None:
            flops = train_flops_per_image(trainer.model, setup.px, device)
        if compile_backend is not None:
            trainer.forward = torch.compile(trainer.model, backend=compile_backend)
        batches = make_batches(trainer)
        rate = timed_steps(trainer, batches, setup.steps, setup.warmup)
        row = Row(name, rate, rate * flops / (peak * 1e12) if peak else None, peak_bytes=peak_memory(device))
        del trainer, batches
        return row

    baseline = measure(
        f"{what}, torchvision DataLoader ({setup.workers} workers)",
        lambda t: torchvision_batches(root, t, setup.px, setup.workers),
    )
    baseline.ratio = "1.00x (baseline)"
    rows.append(baseline)
    variants = [("tinyab data path", None), ("tinyab data path + torch.compile", setup.compile_backend)]
    for name, backend in variants if setup.compile_backend else variants[:1]:
        label = f"{what}, {name}" + (f" ({backend})" if backend else "")
        try:
            row = measure(label, lambda t: tinyab_batches(t, setup.px), backend)
        except Exception as err:  # one row failing must not hide the others
            rows.append(Row(label, result=f"error: {type(err).__name__}: {err}".splitlines()[0], failed=True))
            continue
        row.ratio = f"{row.images_per_s / baseline.images_per_s:.2f}x DataLoader"
        if device.type == "cuda" and not setup.tiny:
            met = row.images_per_s >= 15_000 and row.images_per_s >= 5 * baseline.images_per_s
            row.result = f"target >= 15,000 img/s and >= 5x: {'met' if met else 'NOT met'}"
        rows.append(row)
    return rows


def pack_worker(config: dict[str, Any]) -> None:
    """One of N training processes (run as a subprocess of this script); prints one JSON line."""
    from common import tinyab_batches

    from tinyab.train.engine import build_trainer

    device = torch.device(config["device"])
    if device.type == "cuda":
        torch.cuda.set_per_process_memory_fraction(1 / config["procs"], device)
    else:
        torch.set_num_threads(1)
    setup = Setup(**config["setup"])
    recipe = setup.recipe(setup.pack_model, setup.pack_px, setup.pack_batch)
    trainer = build_trainer(recipe, data=setup.data, device=config["device"], progress=False)
    batches = tinyab_batches(trainer, setup.pack_px)
    trainer.model.train()

    def run(steps: int) -> int:
        seen = 0
        for _ in range(steps):
            batch = next(batches)
            trainer.train_step(batch)
            seen += batch.labels.numel()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return seen

    run(setup.pack_warmup)
    sync = Path(config["sync"])
    (sync / f"ready-{config['rank']}").touch()
    deadline = time.time() + 600
    while len(list(sync.glob("ready-*"))) < config["procs"] and time.time() < deadline:
        time.sleep(0.005)
    start = time.time()
    seen = run(setup.pack_steps)
    end = time.time()
    print(json.dumps({"start": start, "end": end, "images": seen, "peak": peak_memory(device)}))


def packing_rows(setup: Setup, device: torch.device, peak: float | None) -> list[Row]:
    """N processes at once, each capped at 1/N of the GPU's memory; aggregate images/s."""
    from tinyab.models import build_model

    model = build_model(setup.recipe(setup.pack_model, setup.pack_px, setup.pack_batch).model, 200)
    flops = train_flops_per_image(
        model.to(memory_format=torch.channels_last), setup.pack_px, torch.device("cpu")
    )
    rows: list[Row] = []
    first = None
    for procs in setup.pack_procs:
        name = f"pack N={procs}: {setup.pack_model} {setup.pack_px}px, {procs} process(es) x 1/{procs} memory"
        with tempfile.TemporaryDirectory() as sync:
            config = {"device": setup.device, "procs": procs, "sync": sync, "setup": setup.__dict__}
            workers = [
                subprocess.Popen(
                    [sys.executable, __file__, "--pack-worker", json.dumps({**config, "rank": rank})],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
                for rank in range(procs)
            ]
            outputs = [w.communicate(timeout=900) for w in workers]
        failed = [err for w, (_, err) in zip(workers, outputs, strict=True) if w.returncode != 0]
        if failed:
            last = failed[0].strip().splitlines()[-1] if failed[0].strip() else "no output"
            rows.append(Row(name, result=f"error: {last}", failed=True))
            continue
        results = [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]
        span = max(r["end"] for r in results) - min(r["start"] for r in results)
        rate = sum(r["images"] for r in results) / span
        first = first or rate
        row = Row(name, rate, rate * flops / (peak * 1e12) if peak else None, f"{rate / first:.2f}x N=1")
        row.peak_bytes = max(r["peak"] for r in results)
        if procs == 4 and device.type == "cuda" and not setup.tiny:
            row.result = f"target >= 2.5x N=1: {'met' if rate >= 2.5 * first else 'NOT met'}"
        rows.append(row)
    return rows


def seed_net2_row(setup: Setup, device: torch.device) -> Row:
    from tinyab.config import load_recipe
    from tinyab.train.engine import train

    overrides = dict(setup.seed_net2)
    if not setup.tiny and setup.data_overrides():
        overrides["data"] = setup.data_overrides()
    recipe = load_recipe("seed_net2", overrides)
    reset_peak(device)
    result = train(recipe, data=setup.data, device=setup.device, progress=False)
    losses = [m["train_loss"] for m in result.history]
    rate = sum(m["images_per_s"] for m in result.history) / len(result.history)
    falls = len(losses) == recipe.epochs and losses[-1] < losses[0]
    px = result.history[-1]["eval_px"]
    trained = sorted({m["resolution"] for m in result.history})
    return Row(
        f"seed_net2 {recipe.epochs} epochs (train px {trained}, eval {px}px)",
        rate,
        peak_bytes=peak_memory(device),
        result=(
            f"train loss {' -> '.join(f'{v:.3f}' for v in losses)} "
            f"({'falls' if falls else 'does NOT fall'}); "
            f"val top-1 {result.final_val_top1:.3f}; {result.seconds:.1f} s"
        ),
        failed=not falls,
    )


def print_table(rows: list[Row], header: str) -> None:
    def number(v: float | None, fmt: str) -> str:
        return "—" if v is None else format(v, fmt)

    print(header)
    print("| row | images/s | MFU | ratio | peak memory | result |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        memory = "—" if r.peak_bytes is None else f"{r.peak_bytes / 2**30:.2f} GiB"
        mfu = "—" if r.mfu is None else f"{100 * r.mfu:.1f}%"
        print(f"| {r.name} | {number(r.images_per_s, ',.0f')} | {mfu} | {r.ratio} | {memory} | {r.result} |")


def main() -> int:
    prepare_imports()
    sys.path.insert(0, str(HERE))
    if len(sys.argv) == 3 and sys.argv[1] == "--pack-worker":
        pack_worker(json.loads(sys.argv[2]))
        return 0
    from common import add_data_argument
    from train_throughput import extract_train_split

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_argument(parser)
    parser.add_argument("--tiny", action="store_true", help="every row in seconds (CPU test of the script)")
    parser.add_argument("--device", help="cpu or cuda (default: CUDA when available)")
    parser.add_argument("--peak-tflops", type=float, help="dense bf16 peak for MFU (default: by GPU name)")
    parser.add_argument("--skip-compile", action="store_true", help="leave out the torch.compile row")
    args = parser.parse_args()
    started = time.perf_counter()
    setup = Setup.create(args)
    if args.skip_compile:
        setup.compile_backend = ""
    device = torch.device(setup.device)
    if device.type == "cpu":  # --tiny: one thread (OpenMP threads on a busy CPU slow small ops ~5x)
        torch.set_num_threads(1 if setup.tiny else os.cpu_count() or 1)
    peak = peak_tflops(device, args.peak_tflops)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    header = (
        f"gpu_check on {name} (torch {torch.__version__}); peak bf16 for MFU: "
        f"{f'{peak:g} TFLOP/s' if peak else 'unknown'}{'; --tiny' if setup.tiny else ''}"
    )
    print(header, flush=True)

    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = extract_train_split(Path(setup.data), Path(tmp), setup.classes)
        for section in ("throughput", "packing", "seed_net2"):
            try:
                if section == "throughput":
                    rows += throughput_rows(setup, device, peak, root)
                elif section == "packing":
                    rows += packing_rows(setup, device, peak)
                else:
                    rows.append(seed_net2_row(setup, device))
            except Exception as err:  # report and go on: one prepared run should show everything it can
                rows.append(
                    Row(section, result=f"error: {type(err).__name__}: {err}".splitlines()[0], failed=True)
                )
            print(f"  {section} done at {time.perf_counter() - started:.0f} s", flush=True)
    print()
    print_table(rows, f"{header}; {time.perf_counter() - started:.0f} s in all")
    return 1 if any(r.failed for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
