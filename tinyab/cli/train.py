"""``tinyab train``, ``tinyab recipes`` and ``tinyab lr-find``."""

from __future__ import annotations

import argparse
import datetime
import re
from pathlib import Path

from tinyab.cli import add_set_argument, example
from tinyab.config import load_recipe, parse_overrides, recipe_names, recipe_source
from tinyab.errors import UserError
from tinyab.io import check_output_dir

DEFAULT_TRAIN_RESULTS = Path("results") / "train"


def add_recipe_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("recipe", help="a named recipe (see `tinyab recipes`) or a YAML file")
    add_set_argument(parser, "override a recipe field, e.g. --set optim.weight_decay=1e-4 (repeatable)")
    parser.add_argument("--data", help="Tiny ImageNet zip or folder (default: $TINYAB_DATA or the download)")
    parser.add_argument("--seed", type=int, help="random seed (overrides the recipe's)")
    parser.add_argument("--device", help="cpu, cuda or cuda:N (default: CUDA when available)")


def check_device(spec: str | None) -> None:
    """``cpu``, ``cuda``, ``cuda:N`` or ``mps``, and only a device this machine has."""
    if spec is None:
        return
    if not re.fullmatch(r"cpu|mps|cuda(:\d+)?", spec):
        raise UserError(f"--device {spec}: expected cpu, cuda, cuda:N or mps")
    import torch

    if spec.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"--device {spec}: no CUDA device is visible here (use --device cpu)")
    if spec.startswith("cuda:") and int(spec[5:]) >= torch.cuda.device_count():
        raise UserError(f"--device {spec}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    if spec == "mps" and not torch.backends.mps.is_available():
        raise UserError("--device mps: no Apple GPU is visible here (use --device cpu)")


def prepare_out_dir(out: Path, resume: bool) -> Path:
    """Refuse to mix a new run into a folder that already holds one (unless resuming it)."""
    check_output_dir(out, "--out")
    if not resume and any((out / name).exists() for name in ("result.json", "epochs.csv")):
        raise UserError(f"{out}: already holds a training run; choose another --out or pass --resume")
    return out


def default_out_dir(recipe_name: str, results: Path = DEFAULT_TRAIN_RESULTS) -> Path:
    """``results/train/<recipe>-<YYYYmmdd-HHMMSS>`` (with a suffix if that exists): a run is never lost
    for want of ``--out``. Characters a folder name should not hold become ``_``."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = f"{re.sub(r'[^A-Za-z0-9._-]', '_', recipe_name)}-{stamp}"
    out, suffix = results / base, 1
    while out.exists():
        suffix += 1
        out = results / f"{base}-{suffix}"
    return out


def cmd_train(args: argparse.Namespace) -> int:
    from tinyab.train.engine import train

    if args.resume and not args.out:
        raise UserError("--resume: pass --out DIR, the run folder to continue")
    recipe = load_recipe(args.recipe, parse_overrides(args.overrides), seed=args.seed)
    check_device(args.device)
    out = prepare_out_dir(Path(args.out), args.resume) if args.out else default_out_dir(recipe.name)
    print(
        f"recipe {recipe.name}: {recipe.model.arch}, {recipe.epochs} epochs, seed {recipe.seed}", flush=True
    )
    if not args.out:
        print(f"results: {out} (choose the folder with --out DIR)", flush=True)
    result = train(recipe, data=args.data, out_dir=out, device=args.device, resume=args.resume)
    print(
        f"{result.status}: best val top-1 {result.best_val_top1:.4f} at epoch {result.best_epoch}, "
        f"{result.epochs_run} epochs in {result.seconds:.1f} s on {result.device}; results in {out}"
    )
    return 0 if result.status != "diverged" else 1


def cmd_recipes(args: argparse.Namespace) -> int:
    for name in recipe_names():
        _, data = recipe_source(name)
        description = " ".join(str(data.get("description", "")).split())
        print(f"{name:<18} {description}")
    return 0


def cmd_lr_find(args: argparse.Namespace) -> int:
    from tinyab.train.lr_find import lr_find

    recipe = load_recipe(args.recipe, parse_overrides(args.overrides), seed=args.seed)
    check_device(args.device)
    if not 0 < args.min_lr < args.max_lr < float("inf"):
        raise UserError(f"--min-lr {args.min_lr} --max-lr {args.max_lr}: expected 0 < min-lr < max-lr")
    if args.steps < 10:
        raise UserError(f"--steps {args.steps}: expected at least 10 mini-batches")
    check_output_dir(args.out, "--out")
    result = lr_find(
        recipe,
        data=args.data,
        out_dir=Path(args.out),
        device=args.device,
        min_lr=args.min_lr,
        max_lr=args.max_lr,
        steps=args.steps,
    )
    print(f"loss-vs-LR plot: {result.plot_path}")
    print(f"suggested CLR bounds: base_lr {result.base_lr:.3g}, max_lr {result.max_lr:.3g}")
    print(
        f"  use: --set schedule.name=clr --set schedule.base_lr={result.base_lr:.3g} "
        f"--set schedule.max_lr={result.max_lr:.3g}"
    )
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train",
        help="train one recipe and write its run folder",
        **example("tinyab train smoke --data ~/tiny-imagenet-200.zip --set optim.weight_decay=1e-4 --seed 1"),
    )
    add_recipe_arguments(p)
    p.add_argument(
        "--out",
        help="folder for the recipe, metrics, checkpoints and result.json "
        f"(default: {DEFAULT_TRAIN_RESULTS}/<recipe>-<date>-<time>)",
    )
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoints/last.pt")
    p.set_defaults(func=cmd_train)

    p = subparsers.add_parser(
        "recipes", help="list the recipes that ship with tinyab", **example("tinyab recipes")
    )
    p.set_defaults(func=cmd_recipes)

    p = subparsers.add_parser(
        "lr-find",
        help="LR range test (Smith 2017): plot and suggested CLR bounds",
        **example("tinyab lr-find seed_net1 --data ~/tiny-imagenet-200.zip --steps 200"),
    )
    add_recipe_arguments(p)
    p.add_argument("--out", default="results/lr_find", help="folder for the plot and the CSV")
    p.add_argument("--min-lr", type=float, default=1e-5)
    p.add_argument("--max-lr", type=float, default=10.0)
    p.add_argument("--steps", type=int, default=100, help="number of mini-batches in the sweep")
    p.set_defaults(func=cmd_lr_find)
