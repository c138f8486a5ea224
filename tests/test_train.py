"""The training engine on the real mini Tiny ImageNet: learning, determinism, stop, divergence, resume."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
import torch
import yaml

from tinyab.config import load_recipe
from tinyab.train.engine import train

VOLATILE = {"seconds", "images_per_s"}


def stable(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k not in VOLATILE} for row in history]


@pytest.fixture(autouse=True)
def two_threads():
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(previous)


def test_smoke_recipe_learns_well_above_chance(mini_zip, tmp_path):
    recipe = load_recipe("smoke", seed=0)
    result = train(recipe, data=mini_zip, out_dir=tmp_path / "run", progress=False)
    assert result.status == "completed"
    assert result.epochs_run == recipe.epochs == 15
    assert result.best_val_top1 >= 0.30  # chance is 0.10 on 10 classes
    assert result.history[-1]["val_top5"] >= result.history[-1]["val_top1"]


def test_same_seed_gives_identical_metrics_and_other_seed_differs(mini_zip):
    recipe = load_recipe("smoke", {"epochs": 2})
    first = train(recipe, data=mini_zip, progress=False)
    second = train(recipe, data=mini_zip, progress=False)
    third = train(load_recipe("smoke", {"epochs": 2}, seed=1), data=mini_zip, progress=False)
    assert stable(first.history) == stable(second.history)
    assert stable(first.history) != stable(third.history)


def test_on_epoch_stop_ends_the_run(mini_zip):
    seen = []

    def on_epoch(metrics):
        seen.append(metrics["epoch"])
        return "stop" if metrics["epoch"] == 2 else None

    result = train(load_recipe("smoke", {"epochs": 5}), on_epoch, data=mini_zip, progress=False)
    assert result.status == "stopped"
    assert result.epochs_run == 2 and seen == [1, 2]
    keys = {"epoch", "train_loss", "train_top1", "val_loss", "val_top1", "val_top5"}
    assert keys | {"lr", "resolution", "seconds", "images_per_s"} <= set(result.history[0])


def test_nan_loss_ends_with_status_diverged(mini_zip):
    recipe = load_recipe(
        "smoke", {"epochs": 4, "optim": {"lr": 1.0e6, "weight_decay": 0}, "schedule": {"name": "constant"}}
    )
    result = train(recipe, data=mini_zip, progress=False)
    assert result.status == "diverged"
    assert result.epochs_run < 4 or not math.isfinite(result.history[-1]["train_loss"])
    assert not math.isfinite(result.history[-1]["train_loss"])


def test_resolution_phases_switch_at_the_right_epochs(mini_zip):
    recipe = load_recipe("smoke", {"epochs": 4, "resolution": [[1, 16], [2, 32]]})
    result = train(recipe, data=mini_zip, progress=False)
    assert [row["resolution"] for row in result.history] == [16, 32, 32, 32]


def test_run_folder_contents(mini_zip, tmp_path):
    out = tmp_path / "run"
    recipe = load_recipe("smoke", {"epochs": 3})
    result = train(recipe, data=mini_zip, out_dir=out, progress=False)
    assert yaml.safe_load((out / "recipe.yaml").read_text())["epochs"] == 3
    epochs = pd.read_csv(out / "epochs.csv")
    assert list(epochs["epoch"]) == [1, 2, 3]
    assert epochs["val_top1"].max() == pytest.approx(result.best_val_top1)
    summary = json.loads((out / "result.json").read_text())
    assert summary["status"] == "completed" and summary["epochs_run"] == 3
    assert summary["best_epoch"] == int(epochs["val_top1"].idxmax()) + 1
    per_class = pd.read_csv(out / "per_class.csv")
    assert len(per_class) == 10 and per_class["name"].notna().all()
    assert per_class["wnid"].str.match(r"^n\d{8}$").all()
    # per-class accuracies of the best checkpoint average to its val top-1 (50 val images per class)
    assert per_class["accuracy"].mean() == pytest.approx(result.best_val_top1)
    best = torch.load(out / "checkpoints" / "best.pt", weights_only=True)
    assert best["epoch"] == summary["best_epoch"]
    assert (out / "checkpoints" / "last.pt").is_file()


def test_resume_continues_exactly_where_it_stopped(mini_zip, tmp_path):
    recipe = load_recipe("smoke", {"epochs": 4})
    straight = train(recipe, data=mini_zip, progress=False)
    out = tmp_path / "run"
    interrupted = train(
        recipe, lambda m: "stop" if m["epoch"] == 2 else None, data=mini_zip, out_dir=out, progress=False
    )
    assert interrupted.epochs_run == 2
    resumed = train(recipe, data=mini_zip, out_dir=out, resume=True, progress=False)
    assert resumed.status == "completed" and resumed.epochs_run == 4
    assert stable(resumed.history) == stable(straight.history)
    assert list(pd.read_csv(out / "epochs.csv")["epoch"]) == [1, 2, 3, 4]
