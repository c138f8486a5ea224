"""The training engine on the real mini Tiny ImageNet: learning, determinism, stop, divergence, resume."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
import torch
import yaml

from helpers.training import stable, two_threads  # noqa: F401 (an autouse fixture)
from tinyab.config import load_recipe
from tinyab.errors import ConfigError, UserError
from tinyab.train.engine import build_trainer, train


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
        "smoke", {"epochs": 4, "optim": {"lr": 1000.0, "weight_decay": 0}, "schedule": {"name": "constant"}}
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


@pytest.mark.parametrize("ema_epochs", [None, 1.0])
def test_resume_continues_exactly_where_it_stopped(mini_zip, tmp_path, ema_epochs):
    recipe = load_recipe("smoke", {"epochs": 4, "ema_epochs": ema_epochs})
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


# --- evaluation: resolution, schedule, precision ------------------------------------------------


def test_eval_px_defaults_to_the_phase_trained_and_the_last_phase_at_the_end(mini_zip):
    recipe = load_recipe("smoke", {"epochs": 3, "resolution": [[1, 16], [1, 24], [5, 48]]})
    result = train(recipe, data=mini_zip, progress=False)
    # epoch 3 trains in the last phase anyway; a run cut short inside an earlier phase ends at 48
    assert [m["resolution"] for m in result.history] == [16, 24, 48]
    assert [m["eval_px"] for m in result.history] == [16, 24, 48]
    short = load_recipe("smoke", {"epochs": 2, "resolution": [[1, 16], [2, 24], [1, 48]]})
    history = train(short, data=mini_zip, progress=False).history
    assert [(m["resolution"], m["eval_px"]) for m in history] == [(16, 16), (24, 48)]


def test_explicit_eval_px_is_used_after_every_epoch(mini_zip):
    recipe = load_recipe("smoke", {"epochs": 2, "resolution": [[1, 16], [1, 32]], "eval_px": 40})
    result = train(recipe, data=mini_zip, progress=False)
    assert [m["eval_px"] for m in result.history] == [40, 40]
    assert all(0 <= m["val_top1"] <= m["val_top5"] <= 1 for m in result.history)


def test_eval_every_evaluates_those_epochs_and_the_last_and_the_best_uses_only_them(mini_zip, tmp_path):
    out = tmp_path / "run"
    recipe = load_recipe("smoke", {"epochs": 5, "eval_every": 2})
    seen = []
    result = train(recipe, seen.append, data=mini_zip, out_dir=out, progress=False)
    evaluated = [m["epoch"] for m in result.history if m["val_top1"] is not None]
    assert evaluated == [2, 4, 5]
    for m in result.history:
        if m["epoch"] not in evaluated:  # an epoch row without an evaluation: val keys present, None
            assert all(m[k] is None for k in ("val_loss", "val_top1", "val_top5", "eval_px"))
            assert math.isfinite(m["train_loss"]) and m["resolution"] == 32
    assert [m["epoch"] for m in seen] == [1, 2, 3, 4, 5] and seen == result.history
    scores = {m["epoch"]: m["val_top1"] for m in result.history if m["epoch"] in evaluated}
    assert result.best_epoch in evaluated and result.best_val_top1 == max(scores.values())
    assert result.final_val_top1 == scores[5]
    # records: empty cells (NaN in pandas) for the epochs not evaluated; the best checkpoint is evaluated
    epochs = pd.read_csv(out / "epochs.csv")
    assert epochs["val_top1"].isna().tolist() == [True, False, True, False, False]
    assert ",,," in (out / "epochs.csv").read_text().splitlines()[1]
    summary = json.loads((out / "result.json").read_text())
    assert summary["best_epoch"] == result.best_epoch
    assert torch.load(out / "checkpoints" / "best.pt", weights_only=True)["epoch"] == result.best_epoch
    trials = pd.read_csv(out / "trials.csv")
    assert trials["best_epoch"].iloc[0] == result.best_epoch
    assert trials["best_val_top1"].iloc[0] == pytest.approx(result.best_val_top1)


def test_evaluation_does_not_change_training(mini_zip):
    every = train(load_recipe("smoke", {"epochs": 3}), data=mini_zip, progress=False)
    sparse = train(load_recipe("smoke", {"epochs": 3, "eval_every": 5}), data=mini_zip, progress=False)
    at_64 = train(load_recipe("smoke", {"epochs": 3, "eval_px": 64}), data=mini_zip, progress=False)
    train_keys = ("train_loss", "train_top1", "lr", "resolution")
    for other in (sparse, at_64):
        assert [[m[k] for k in train_keys] for m in every.history] == [
            [m[k] for k in train_keys] for m in other.history
        ]
    assert every.history[-1]["val_top1"] == sparse.history[-1]["val_top1"]


def test_resume_with_eval_every_continues_the_same_run(mini_zip, tmp_path):
    recipe = load_recipe("smoke", {"epochs": 4, "eval_every": 3})
    straight = train(recipe, data=mini_zip, progress=False)
    out = tmp_path / "run"
    train(recipe, lambda m: "stop" if m["epoch"] == 2 else None, data=mini_zip, out_dir=out, progress=False)
    resumed = train(recipe, data=mini_zip, out_dir=out, resume=True, progress=False)
    assert stable(resumed.history) == stable(straight.history)
    assert (resumed.best_epoch, resumed.best_val_top1) == (straight.best_epoch, straight.best_val_top1)


@pytest.mark.parametrize(
    ("precision", "device", "native", "expected"),
    [
        ("auto", "cpu", True, True),
        ("auto", "cpu", False, False),
        ("auto", "cuda", False, True),
        ("float32", "cuda", True, False),
        ("bfloat16", "cpu", False, True),
    ],
)
def test_precision_chooses_bf16_autocast(monkeypatch, precision, device, native, expected):
    from tinyab.train import runtime

    monkeypatch.setattr(runtime, "native_bf16_cpu", lambda: native)
    assert runtime.bf16_autocast(precision, torch.device(device)) is expected


def test_float32_and_bf16_evaluation_agree(mini_zip):
    from tinyab.train.engine import build_trainer

    trainer = build_trainer(
        load_recipe("smoke", {"eval_precision": "float32"}), data=mini_zip, progress=False
    )
    for _ in range(2):
        trainer.train_epoch(0)
    exact = trainer.evaluate(32)
    trainer.eval_autocast = True
    rounded = trainer.evaluate(32)
    assert exact.px == rounded.px == 32
    assert abs(exact.top1 - rounded.top1) <= 0.02 and abs(exact.loss - rounded.loss) <= 0.05 * exact.loss


# --- batch size against the training set --------------------------------------------------------


def test_a_batch_larger_than_the_recipe_training_set_is_refused_by_the_recipe():
    with pytest.raises(ConfigError) as caught:
        load_recipe("smoke", {"batch_size": 64, "data": {"train_per_class": 6}})
    assert str(caught.value) == (
        "recipe smoke: batch_size: 64 is more than the training set's 60 images "
        "(data.classes 10 × data.train_per_class 6); expected at most 60"
    )
    with pytest.raises(ConfigError, match=r"5001 .* 5,000 images \(data.classes 10 × Tiny ImageNet's 500"):
        load_recipe("smoke", {"batch_size": 5001})


def test_a_batch_larger_than_the_dataset_is_refused_before_training(mini_zip, tmp_path):
    """The mini set has 50 train images per class: smoke's 10 classes hold 500, fewer than the 5,000 of
    Tiny ImageNet that the recipe allows for."""
    with pytest.raises(UserError) as caught:
        train(load_recipe("smoke", {"batch_size": 501}), data=mini_zip, out_dir=tmp_path / "run")
    assert str(caught.value) == (
        f"batch_size: 501 is more than the training set's 500 images (data.classes 10 of {mini_zip}); "
        "expected at most 500"
    )
    assert not (tmp_path / "run").exists()
    whole = train(load_recipe("smoke", {"batch_size": 500, "epochs": 1}), data=mini_zip, progress=False)
    assert whole.history[0]["images_per_s"] > 0  # one batch of all 500 images


def test_bf16_training_tracks_float32_training(mini_zip):
    """The same seed under bf16 autocast and in float32: not the same numbers (bf16 did run), the
    same learning (train loss after two epochs within 5%)."""
    from tinyab.train.engine import build_trainer

    losses = {}
    for precision in ("float32", "bfloat16"):
        trainer = build_trainer(load_recipe("smoke", {"precision": precision}), data=mini_zip, progress=False)
        assert trainer.autocast is (precision == "bfloat16")
        losses[precision] = [trainer.train_epoch(epoch)["train_loss"] for epoch in range(2)]
    assert losses["float32"] != losses["bfloat16"]
    assert losses["bfloat16"][1] == pytest.approx(losses["float32"][1], rel=0.05)


# --- the weight average (ema_epochs) ---------------------------------------------------------------


def test_the_weight_average_is_the_exponential_average_of_the_weights_after_each_step(mini_zip):
    """Independent reference: the average starts at the weights after the first step, then moves
    1 / (steps per epoch x ema_epochs) of the way to the new weights after every step; BatchNorm's
    running statistics are averaged the same way."""
    trainer = build_trainer(
        load_recipe("smoke", {"epochs": 1, "ema_epochs": 0.5}), data=mini_zip, progress=False
    )
    rate = 1 / (trainer.steps_per_epoch * 0.5)
    trainer.model.train()
    reference: dict[str, torch.Tensor] = {}
    for batch in trainer.batches(32, augment_on=True):
        trainer.train_step(batch)
        trainer.schedule.step()
        for key, value in trainer.model.state_dict().items():
            if value.is_floating_point():
                now = value.detach().clone()
                reference[key] = now if key not in reference else (1 - rate) * reference[key] + rate * now
    averaged = trainer.ema.module.state_dict()
    assert any("running_mean" in key for key in reference)
    for key, value in reference.items():
        torch.testing.assert_close(averaged[key], value, rtol=1e-5, atol=1e-6)
    assert not torch.equal(averaged["fc.weight"], trainer.model.state_dict()["fc.weight"])


def test_the_weight_average_is_evaluated_beside_the_model_and_leaves_training_alone(mini_zip):
    runs = {
        ema: train(load_recipe("smoke", {"epochs": 3, "ema_epochs": ema}), data=mini_zip, progress=False)
        for ema in (None, 1.0, 1e-9)
    }
    plain, averaged, instant = runs[None], runs[1.0], runs[1e-9]
    assert all(m["val_top1_ema"] is None and m["val_loss_ema"] is None for m in plain.history)

    def model_only(run):
        return [{k: v for k, v in m.items() if not k.endswith("_ema")} for m in stable(run.history)]

    assert model_only(averaged) == model_only(plain)  # same training, same model evaluation, same result
    assert (averaged.best_val_top1, averaged.final_val_top1) == (plain.best_val_top1, plain.final_val_top1)
    assert [m["val_loss_ema"] for m in averaged.history] != [m["val_loss"] for m in averaged.history]
    # a time constant shorter than one step: the average is the model itself
    assert [(m["val_top1_ema"], m["val_loss_ema"]) for m in instant.history] == [
        (m["val_top1"], m["val_loss"]) for m in instant.history
    ]
