"""`tinyab train`, `recipes` and `lr-find` from the command line: output, files (and where they go
without --out) and refusals."""

from __future__ import annotations

import datetime
import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from tinyab.cli import main
from tinyab.cli import train as train_cli
from tinyab.cli.train import default_out_dir

BAD_SETTINGS = [
    (["--set", "optimm.lr=0.1"], "optimm: unknown key (did you mean 'optim'?)"),
    (["--set", "model.dropout=1.0"], "model.dropout: expected a number in [0, 1)"),
    (["--set", "optim.weight_decay=-0.1"], "optim.weight_decay: expected a number >= 0"),
    (
        ["--set", "schedule.name=clr", "--set", "schedule.base_lr=0.5", "--set", "schedule.max_lr=0.1"],
        "schedule.base_lr: must not exceed max_lr",
    ),
    (["--set", "resolution=[[5, 0]]"], "resolution[0]: px must be in 1..64"),
    (["--set", "resolution=[[0, 32]]"], "resolution[0]: a phase needs epochs > 0"),
    (["--set", "epochs=ten"], "epochs: expected an integer"),
    (["--set", "model.arch=resnet19"], "did you mean 'resnet18'?"),
    (["--set", "eval_px=0"], "eval_px: expected an integer in 1..64, or null"),
    (["--set", "eval_px=128"], "eval_px: expected an integer in 1..64, or null"),
    (["--set", "eval_every=0"], "eval_every: expected a positive integer"),
    (["--set", "eval_precision=fp16"], "eval_precision: expected one of 'auto', 'float32', 'bfloat16'"),
]


@pytest.mark.parametrize(("args", "message"), BAD_SETTINGS)
def test_bad_recipe_values_are_refused_with_one_line(args, message, mini_zip, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", "smoke", "--data", str(mini_zip), "--out", str(out), *args])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and message in err and err.startswith("tinyab: error: recipe smoke: ")
    assert not out.exists()


def test_malformed_recipe_file_names_the_file_and_line(tmp_path, capsys):
    recipe = tmp_path / "broken.yaml"
    recipe.write_text("epochs: 3\nmodel: {arch: resnet_small\n")
    assert main(["train", str(recipe), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert f"{recipe}: malformed YAML at line" in err and err.count("\n") == 1
    assert not (tmp_path / "run").exists()


def test_unknown_recipe_lists_the_available_ones(capsys):
    assert main(["train", "smok"]) == 2
    err = capsys.readouterr().err
    assert "unknown recipe 'smok' (did you mean 'smoke'?)" in err and "seed_net2" in err


def test_missing_dataset_is_one_line_in_a_real_process(tmp_path):
    missing = tmp_path / "nowhere.zip"
    proc = subprocess.run(
        [sys.executable, "-m", "tinyab", "train", "smoke", "--data", str(missing), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and str(missing) in proc.stderr
    assert proc.stderr.strip().count("\n") == 0
    assert list(tmp_path.iterdir()) == []


def test_recipes_lists_every_shipped_recipe(capsys):
    assert main(["recipes"]) == 0
    names = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert names == ["resnet34_vanilla", "resnet50_vanilla", "seed_net1", "seed_net2", "smoke"]


def test_train_writes_its_folder_and_refuses_to_overwrite_it(mini_zip, tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "smoke", "--data", str(mini_zip), "--out", str(out), "--set", "epochs=2"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "epoch   2/2" in printed and f"results in {out}" in printed
    assert {p.name for p in out.iterdir()} >= {"recipe.yaml", "epochs.csv", "result.json", "per_class.csv"}
    assert main(args) == 2
    assert "already holds a training run" in capsys.readouterr().err
    # the folder is a one-trial study: the report reads it like any records
    result = json.loads((out / "result.json").read_text())
    assert main(["report", str(out), "--no-figures"]) == 0
    report = capsys.readouterr().out
    assert "1 trials: 1 completed" in report and "Arms: all trials together." in report
    arms = pd.read_csv(out / "report" / "arms.csv")
    assert arms["n"].tolist() == [1] and arms["mean"].iloc[0] == pytest.approx(result["best_val_top1"])
    trials = pd.read_csv(out / "trials.csv")
    assert trials["trial_id"].tolist() == ["t0000"] and trials["best_epoch"].iloc[0] == result["best_epoch"]


def test_lr_find_writes_plot_and_suggests_ordered_bounds(mini_zip, tmp_path, capsys):
    out = tmp_path / "lr"
    assert main(["lr-find", "smoke", "--data", str(mini_zip), "--out", str(out), "--steps", "40"]) == 0
    printed = capsys.readouterr().out
    assert "suggested CLR bounds" in printed
    png = (out / "lr_find.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    rows = (out / "lr_find.csv").read_text().splitlines()
    lrs = [float(line.split(",")[0]) for line in rows[1:]]
    assert lrs == sorted(lrs) and lrs[0] == pytest.approx(1e-5)
    base = float(printed.split("base_lr ")[1].split(",")[0])
    top = float(printed.split("max_lr ")[1].split()[0])
    assert min(lrs) <= base <= top / 3 + 1e-12 and top <= max(lrs)


def test_train_without_out_keeps_the_run_and_says_where(mini_zip, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    old_mask = os.umask(0o027)
    try:
        assert main(["train", "smoke", "--data", str(mini_zip), "--set", "epochs=1"]) == 0
    finally:
        os.umask(old_mask)
    lines = capsys.readouterr().out.splitlines()
    (out,) = (tmp_path / "results" / "train").iterdir()
    assert re.fullmatch(r"smoke-\d{8}-\d{6}", out.name)
    relative = Path("results") / "train" / out.name
    assert lines[1] == f"results: {relative} (choose the folder with --out DIR)"
    assert lines[-1].startswith("completed: ") and lines[-1].endswith(f"; results in {relative}")
    assert {"recipe.yaml", "study.yaml", "trials.csv", "result.json"} <= {p.name for p in out.iterdir()}
    assert stat.S_IMODE((out / "result.json").stat().st_mode) == 0o640  # the umask's mode, not 0600


def test_default_out_dir_is_unique_and_a_safe_folder_name(tmp_path, monkeypatch):
    class Clock(datetime.datetime):
        @classmethod
        def now(cls, tz=None):
            return cls(2026, 3, 1, 9, 5, 7)

    monkeypatch.setattr(train_cli, "datetime", SimpleNamespace(datetime=Clock))
    first = default_out_dir("my recipe/v2", tmp_path)
    assert first == tmp_path / "my_recipe_v2-20260301-090507"
    first.mkdir()
    assert default_out_dir("my recipe/v2", tmp_path) == tmp_path / "my_recipe_v2-20260301-090507-2"


def test_resume_without_out_is_refused(capsys):
    assert main(["train", "smoke", "--resume"]) == 2
    assert capsys.readouterr().err == "tinyab: error: --resume: pass --out DIR, the run folder to continue\n"
