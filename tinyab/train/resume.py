"""Continue a run folder (``tinyab train --resume``) only when it holds the run asked for.

Everything is checked before the folder is touched: the recipe given must equal the run's
``recipe.yaml`` (``epochs`` may differ only where the learning-rate schedule does not depend on the
run's length), and ``checkpoints/last.pt`` must be a readable tinyab state of the same model. Without
these checks a resume would continue another experiment under the first one's name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from tinyab.config import Recipe, load_recipe
from tinyab.errors import UserError
from tinyab.schema import flatten
from tinyab.train.checkpoint import load_checkpoint
from tinyab.train.schedules import length_dependence

RECIPE_FILE = "recipe.yaml"
LAST_CHECKPOINT = Path("checkpoints") / "last.pt"
# what Trainer.state writes; a best.pt (epoch and model only) or another file lacks some
STATE_KEYS = ("epoch", "model", "optimizer", "schedule_step", "generator", "torch_rng", "history", "best")


@dataclass(frozen=True)
class ResumePoint:
    """A checked checkpoint to continue from; ``note`` says why a changed ``epochs`` is allowed."""

    checkpoint: Path
    state: dict[str, Any]
    note: str | None


def _show(value: Any) -> str:
    return "null" if value is None else str(value)


def check_recipe(path: Path, recipe: Recipe) -> str | None:
    """Refuse a recipe that differs from the run's ``recipe.yaml`` at ``path``; returns the line to
    print when only ``epochs`` differs and the schedule allows it."""
    stored, given = flatten(load_recipe(str(path)).to_dict()), flatten(recipe.to_dict())
    changed = [key for key in given if stored.get(key) != given[key]]
    if not changed:
        return None
    diff = "; ".join(f"{key} {_show(stored.get(key))} in the run, {_show(given[key])} now" for key in changed)
    if changed != ["epochs"]:
        raise UserError(
            f"{path}: the recipe given differs from the run's: {diff} "
            "(resume with the run's recipe, or train into another --out)"
        )
    why = length_dependence(recipe.schedule, int(stored["epochs"]), recipe.epochs)
    if why is not None:
        raise UserError(f"{path}: {diff}: refused, {why} (train into another --out)")
    name = recipe.schedule.name
    return f"{path}: {diff}: allowed, the {name} schedule does not depend on the number of epochs"


def read_state(path: Path) -> dict[str, Any]:
    """The training state in ``path`` (on the CPU), refused in one line unless it is a whole one."""
    state = load_checkpoint(path, torch.device("cpu"))
    missing = [key for key in STATE_KEYS if not isinstance(state, dict) or key not in state]
    if missing:
        raise UserError(f"{path}: not a training state written by tinyab train (no {missing[0]!r})")
    return state


def resume_point(run_dir: Path, recipe: Recipe) -> ResumePoint | None:
    """Check ``run_dir`` against ``recipe``; None when it holds no checkpoint (start from scratch)."""
    recipe_file, checkpoint = run_dir / RECIPE_FILE, run_dir / LAST_CHECKPOINT
    if not (recipe_file.exists() or checkpoint.exists()):
        return None
    note = check_recipe(recipe_file, recipe)
    if not checkpoint.exists():
        return None
    state = read_state(checkpoint)
    if recipe.epochs < int(state["epoch"]):
        raise UserError(
            f"{recipe_file}: epochs {recipe.epochs} now, but {checkpoint} has already run "
            f"{state['epoch']} epochs"
        )
    return ResumePoint(checkpoint, state, note)


def check_model(path: Path, weights: Mapping[str, Any], model: nn.Module) -> None:
    """Refuse the weights of another model: names and shapes must be exactly ``model``'s."""
    expected = model.state_dict()
    missing = [key for key in expected if key not in weights]
    unknown = [key for key in weights if key not in expected]
    if missing or unknown:
        example = f"no {missing[0]!r}" if missing else f"an unknown {unknown[0]!r}"
        raise UserError(
            f"{path}: weights of another model ({len(missing)} of the recipe's {len(expected)} tensors "
            f"missing, {len(unknown)} unknown; e.g. {example})"
        )
    for key, tensor in expected.items():
        shape = tuple(getattr(weights[key], "shape", ()))
        if shape != tuple(tensor.shape):
            raise UserError(
                f"{path}: weights of another model ({key} is {list(shape)} there, "
                f"{list(tensor.shape)} in the recipe's model)"
            )
