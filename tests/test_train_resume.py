"""``train(..., resume=True)`` on real run folders (mini Tiny ImageNet): a changed recipe, a changed
length, a corrupt checkpoint or one of another model is refused before the folder changes; an allowed
change of ``epochs`` continues into exactly the run a fresh start of the new recipe would be."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from helpers.training import stable, two_threads  # noqa: F401 (an autouse fixture)
from tinyab.config import ModelConfig, ScheduleConfig, load_recipe
from tinyab.errors import UserError
from tinyab.models import build_model
from tinyab.train.checkpoint import save_checkpoint
from tinyab.train.engine import train
from tinyab.train.schedules import learning_rate, length_dependence

TINY = {"data": {"train_per_class": 16, "val_per_class": 4}, "batch_size": 32}
STEP = {**TINY, "schedule": {"name": "step", "milestones": [2]}}


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def one_epoch_run(mini_zip, tmp_path_factory) -> Path:
    """A real run folder of the tiny smoke recipe (one_cycle) after 1 of its 2 epochs."""
    out = tmp_path_factory.mktemp("runs") / "run"
    train(load_recipe("smoke", {**TINY, "epochs": 1}), data=mini_zip, out_dir=out, progress=False)
    return out


@pytest.fixture
def run(one_epoch_run, tmp_path) -> Path:
    return Path(shutil.copytree(one_epoch_run, tmp_path / "run"))


def refused(run: Path, mini_zip: Path, overrides: dict, seed: int | None = None) -> str:
    """The one-line refusal of resuming ``run`` with the tiny recipe and ``overrides``; the folder's
    files are byte for byte as they were."""
    before = snapshot(run)
    recipe = load_recipe("smoke", {**TINY, "epochs": 1, **overrides}, seed=seed)
    with pytest.raises(UserError) as caught:
        train(recipe, data=mini_zip, out_dir=run, resume=True, progress=False)
    assert snapshot(run) == before
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_a_different_recipe_is_refused_naming_each_field_and_both_values(run, mini_zip):
    message = refused(run, mini_zip, {"optim": {"lr": 0.05}, "augment": {"flip": False}}, seed=3)
    assert message == (
        f"{run / 'recipe.yaml'}: the recipe given differs from the run's: seed 0 in the run, 3 now; "
        "optim.lr 0.1 in the run, 0.05 now; augment.flip True in the run, False now "
        "(resume with the run's recipe, or train into another --out)"
    )


def test_more_epochs_are_refused_where_the_schedule_is_scaled_to_them(run, mini_zip):
    message = refused(run, mini_zip, {"epochs": 2})
    assert message == (
        f"{run / 'recipe.yaml'}: epochs 1 in the run, 2 now: refused, the one_cycle schedule is scaled to "
        "the total number of epochs (train into another --out)"
    )


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        (lambda b: b[: len(b) // 2], "cannot read checkpoint, truncated or corrupt (RuntimeError)"),
        (lambda b: b"", "cannot read checkpoint, truncated or corrupt (EOFError)"),
        (lambda b: b"\x80\x02garbage" * 50, "not a checkpoint tinyab can read (corrupt, or holding more"),
    ],
    ids=["truncated", "empty", "garbage"],
)
def test_a_corrupt_checkpoint_is_refused_naming_it(run, mini_zip, damage, expected):
    last = run / "checkpoints" / "last.pt"
    last.write_bytes(damage(last.read_bytes()))
    assert refused(run, mini_zip, {}).startswith(f"{last}: {expected}")


def test_a_best_checkpoint_in_place_of_last_is_refused(run, mini_zip):
    last = run / "checkpoints" / "last.pt"
    shutil.copy(run / "checkpoints" / "best.pt", last)
    message = refused(run, mini_zip, {})
    assert message == f"{last}: not a training state written by tinyab train (no 'optimizer')"


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        (
            ModelConfig(arch="resnet18"),
            "weights of another model (0 of the recipe's 74 tensors missing, 48 unknown; "
            "e.g. an unknown 'stages.0.1.conv1.weight')",
        ),
        (
            ModelConfig(arch="resnet_small", stem="cifar", width=0.5),
            "weights of another model (stem.0.weight is [8, 3, 3, 3] there, [16, 3, 3, 3] in the recipe's",
        ),
    ],
    ids=["resnet18", "half-width"],
)
def test_a_checkpoint_of_another_model_is_refused_naming_it(run, mini_zip, model, expected):
    last = run / "checkpoints" / "last.pt"
    state = torch.load(last, weights_only=True)
    state["model"] = build_model(model, 10).state_dict()
    save_checkpoint(state, last)
    assert refused(run, mini_zip, {}).startswith(f"{last}: {expected}")


def test_more_epochs_under_a_step_schedule_continue_into_the_longer_run(mini_zip, tmp_path, capsys):
    longer = load_recipe("smoke", {**STEP, "epochs": 3})
    straight = train(longer, data=mini_zip, progress=False)
    out = tmp_path / "run"
    train(load_recipe("smoke", {**STEP, "epochs": 2}), data=mini_zip, out_dir=out, progress=False)
    resumed = train(longer, data=mini_zip, out_dir=out, resume=True)
    assert stable(resumed.history) == stable(straight.history)
    assert capsys.readouterr().out.splitlines()[:2] == [
        f"{out / 'recipe.yaml'}: epochs 2 in the run, 3 now: allowed, the step schedule does not depend "
        "on the number of epochs",
        "resuming after epoch 2",
    ]
    assert load_recipe(str(out / "recipe.yaml")).epochs == 3


def test_fewer_epochs_than_already_run_are_refused(mini_zip, tmp_path):
    out = tmp_path / "run"
    train(load_recipe("smoke", {**STEP, "epochs": 2}), data=mini_zip, out_dir=out, progress=False)
    before = snapshot(out)
    with pytest.raises(UserError) as caught:
        train(load_recipe("smoke", {**STEP, "epochs": 1}), data=mini_zip, out_dir=out, resume=True)
    assert str(caught.value) == (
        f"{out / 'recipe.yaml'}: epochs 1 now, but {out / 'checkpoints' / 'last.pt'} has already run 2 epochs"
    )
    assert snapshot(out) == before


def test_the_run_folder_recipe_file_resumes_its_own_run(one_epoch_run, mini_zip, tmp_path):
    """``tinyab train RUN/recipe.yaml --resume --out RUN``: the stored recipe equals the one it came from."""
    out = Path(shutil.copytree(one_epoch_run, tmp_path / "run"))
    result = train(
        load_recipe(str(out / "recipe.yaml")), data=mini_zip, out_dir=out, resume=True, progress=False
    )
    assert result.epochs_run == 1 and result.status == "completed"


@pytest.mark.parametrize(
    "schedule",
    [
        {"name": "cosine"},
        {"name": "one_cycle"},
        {"name": "constant"},
        {"name": "constant", "warmup_epochs": 1.0},
        {"name": "constant", "warmup_epochs": 4.0},
        {"name": "step", "milestones": [2, 5], "warmup_epochs": 0.5},
        {"name": "step", "milestones": [2], "warmup_epochs": 3.5},
        {"name": "clr", "step_size": 1.5, "mode": "triangular2"},
    ],
)
def test_length_dependence_is_exactly_where_the_learning_rates_differ(schedule):
    """None exactly when runs of 3 and 6 epochs take the same lr at every iteration of the first 3."""
    cfg, steps_per_epoch = ScheduleConfig(**schedule), 7

    def rates(epochs: int) -> list[float]:
        total = epochs * steps_per_epoch
        return [learning_rate(cfg, 0.1, s, steps_per_epoch, total) for s in range(3 * steps_per_epoch)]

    assert (length_dependence(cfg, 3, 6) is None) == (rates(3) == rates(6))
