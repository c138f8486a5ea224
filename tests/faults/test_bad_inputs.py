"""A corpus of bad inputs, each answered in one line: exit code 2, one line on stderr naming the file or
field, no traceback, and no file created or changed (every case runs in its own empty folder).

Cases are (id, arguments, expected text in the message). ``{zip}`` is the mini archive, ``{tmp}`` the
case's folder and ``{bad_archive}`` a copy of the mini archive whose first JPEG is garbage; ``SETUP``
writes the files a case needs before it runs, and a case in ``RESUMED`` finds a real one-epoch run
folder at ``{tmp}/run``, damaged as it says. A download says what it fetches before it starts, so a case
in ``ANNOUNCED`` prints that line before its one-line refusal.
"""

from __future__ import annotations

import functools
import os
import shutil
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import yaml
from test_data_helpers import mini_with

from helpers.studies import edited
from tinyab.cli import main
from tinyab.config import ModelConfig, load_recipe
from tinyab.models import build_model
from tinyab.train.checkpoint import save_checkpoint
from tinyab.train.engine import train

STUDY = {
    "name": "tiny",
    "question": "Does it work?",
    "recipe": "smoke",
    "overrides": {"epochs": 2},
    "params": {
        "init.scheme": {"role": "scientific", "type": "grid", "values": ["variance_scaling", "xavier"]},
        "optim.lr": {"role": "nuisance", "type": "loguniform", "low": 0.01, "high": 0.5},
    },
    "num_samples": 2,
    "seeds": 2,
    "sampler": {"name": "tpe", "seed": 1},
    "pruner": {"name": "median", "warmup_epochs": 1},
}
ABLATION = {
    "name": "tiny_ablation",
    "question": "Does weight decay matter?",
    "recipe": "smoke",
    "components": {"weight_decay": {"alternatives": {"none": {"optim.weight_decay": 0.0}}}},
    "nuisance": {"lr": {"key": "optim.lr", "type": "loguniform", "low": 0.05, "high": 0.5}},
    "seeds": 2,
    "num_samples": 2,
}


def yaml_file(name: str, data: object) -> Callable[[Path], None]:
    return lambda tmp: (tmp / name).write_text(yaml.safe_dump(data, sort_keys=False))


def text_file(name: str, text: str | bytes) -> Callable[[Path], None]:
    def write(tmp: Path) -> None:
        (tmp / name).write_bytes(text if isinstance(text, bytes) else text.encode())

    return write


def folder(name: str, mode: int | None = None) -> Callable[[Path], None]:
    def make(tmp: Path) -> None:
        (tmp / name).mkdir()
        if mode is not None:
            (tmp / name).chmod(mode)

    return make


def records_with(study_yaml: str) -> Callable[[Path], None]:
    def write(tmp: Path) -> None:
        run = tmp / "recs"
        run.mkdir()
        (run / "study.yaml").write_text(study_yaml)
        (run / "trials.csv").write_text("trial_id,status,seed,best_val_top1\nt0000,completed,0,0.3\n")

    return write


BOMB = "a: &a [x, x, x, x]\nb: &b [*a, *a, *a, *a]\nc: [*b, *b, *b, *b]\n"  # grows 4× per level
TRAIN = ["train", "smoke", "--data", "{zip}", "--out", "{tmp}/out"]
SEARCH = ["search", "{tmp}/s.yaml", "--dry-run", "--results", "{tmp}/res", "--data", "{zip}"]
ABLATE = ["ablate", "{tmp}/a.yaml", "--dry-run", "--results", "{tmp}/res", "--profile", "smoke"]
# the recipe of the run in RESUMED cases: smoke on 10 x 8 train images, one epoch (a second or two)
RESUMABLE = {"epochs": 1, "data": {"train_per_class": 8, "val_per_class": 2}}
RESUME = [*TRAIN[:-1], "{tmp}/run", "--resume", "--set", "epochs=1"]
RESUME += ["--set", "data.train_per_class=8", "--set", "data.val_per_class=2"]
FIRST_JPEG = "tiny-imagenet-200/train/n02124075/images/n02124075_0.JPEG"
RECIPE_SETS = [
    ("optim.lr=.inf", "optim.lr: expected a finite number"),
    ("optim.lr=.nan", "optim.lr: expected a finite number"),
    ("optim.lr=-1", "optim.lr: expected"),
    ("optim.lr=1e30", "optim.lr: expected"),
    ("model.width=.inf", "model.width: expected a finite number"),
    ("model.width=0", "model.width: expected"),
    ("model.width=1e9", "model.width: expected"),
    ("augment.mixup=.nan", "augment.mixup: expected a finite number"),
    ("augment.pad=100000", "augment.pad: expected"),
    ("batch_size=0", "batch_size: expected"),
    ("epochs=0", "epochs: expected"),
    ("epochs=ten", "epochs: expected an integer"),
    ("model.arch=resnet19", "did you mean 'resnet18'?"),
    ("optimm.lr=0.1", "did you mean 'optim'?"),
    ("model.dropout=1.5", "model.dropout: expected a number in [0, 1)"),
    ("resolution=[[0, 32]]", "resolution[0]: a phase needs epochs > 0"),
    ("resolution=[[5, 100]]", "resolution[0]: px must be in 1..64"),
    ("init.scheme=he", "init.scheme: expected one of"),
    ("data.classes=1", "data.classes: expected an integer from 2 to 200"),
    ("data.classes=500", "data.classes: expected an integer from 2 to 200"),
    ("optim.momentum=1.0", "optim.momentum: expected a number in [0, 1)"),
    ("augment.label_smoothing=1.0", "augment.label_smoothing: expected"),
    ("schedule.gamma=0", "schedule.gamma: expected a number in (0, 1]"),
    ("schedule.pct_start=1", "schedule.pct_start: expected a number in (0, 1)"),
    ("eval_batch_size=-3", "eval_batch_size: expected"),
    ("ema_epochs=0", "ema_epochs: expected a positive number of epochs, or null"),
    ("batch_size=5001", "batch_size: 5001 is more than the training set's 5,000 images (data.classes 10 ×"),
    ("data.train_per_class=5", "batch_size: 64 is more than the training set's 50 images"),
]
CASES: list[tuple[str, list[str], str]] = [
    *[(f"train --set {s}", [*TRAIN, "--set", s], m) for s, m in RECIPE_SETS],
    ("train --seed -1", [*TRAIN, "--seed", "-1"], "seed: expected an integer >= 0"),
    ("train unknown recipe", ["train", "smok", "--data", "{zip}"], "unknown recipe 'smok'"),
    ("train recipe is a folder", ["train", "{tmp}/r.yaml", "--data", "{zip}"], "r.yaml"),
    ("train recipe not UTF-8", ["train", "{tmp}/bin.yaml", "--data", "{zip}"], "bin.yaml"),
    ("train recipe malformed", ["train", "{tmp}/bad.yaml", "--data", "{zip}"], "malformed YAML at line"),
    ("train recipe alias bomb", ["train", "{tmp}/bomb.yaml", "--data", "{zip}"], "bomb.yaml"),
    ("train recipe duplicate key", ["train", "{tmp}/dup.yaml", "--data", "{zip}"], "dup.yaml"),
    ("train --out is a file", ["train", "smoke", "--data", "{zip}", "--out", "{tmp}/file"], "file"),
    (
        "train --out under a file",
        ["train", "smoke", "--data", "{zip}", "--out", "{tmp}/file/out"],
        "is a file",
    ),
    ("search --results is a file", [*SEARCH[:-4], "--results", "{tmp}/file", "--data", "{zip}"], "--results"),
    ("train --device bogus", [*TRAIN, "--device", "bogus"], "--device"),
    ("train --data missing", ["train", "smoke", "--data", "{tmp}/nothing.zip"], "nothing.zip"),
    ("train --data not a zip", ["train", "smoke", "--data", "{tmp}/file"], "file"),
    ("train --resume without --out", ["train", "smoke", "--data", "{zip}", "--resume"], "--resume"),
    ("train batch_size above the data", [*TRAIN, "--set", "batch_size=501"], "batch_size: 501 is more than"),
    (
        "search batch_size above the data (not --dry-run)",
        [
            *("search", "init_vs_wd", "--profile", "smoke", "--results", "{tmp}/res", "--data", "{zip}"),
            *("--set", "data.train_per_class=null", "--set", "data.classes=2", "--set", "batch_size=120"),
        ],
        "batch_size: 120 is more than the training set's 100 images",
    ),
    ("resume another recipe", [*RESUME, "--set", "optim.lr=0.05"], "optim.lr 0.1 in the run, 0.05 now"),
    ("resume more one_cycle epochs", [*RESUME, "--set", "epochs=2"], "one_cycle schedule is scaled"),
    ("resume truncated checkpoint", RESUME, "last.pt: cannot read checkpoint, truncated or corrupt"),
    ("resume garbage checkpoint", RESUME, "last.pt: not a checkpoint tinyab can read"),
    ("resume another model's checkpoint", RESUME, "last.pt: weights of another model"),
    ("lr-find --min-lr 0", ["lr-find", "smoke", "--data", "{zip}", "--min-lr", "0"], "--min-lr"),
    ("lr-find --steps -5", ["lr-find", "smoke", "--data", "{zip}", "--steps", "-5"], "--steps"),
    (
        "lr-find min above max",
        ["lr-find", "smoke", "--data", "{zip}", "--min-lr", "1", "--max-lr", "0.1"],
        "--min-lr",
    ),
    ("study unknown key", SEARCH, "s.yaml.optimiser: unknown key"),
    ("study seeds three", SEARCH, "s.yaml.seeds: expected"),
    ("study seeds 0", SEARCH, "s.yaml.seeds: expected"),
    ("study seeds repeated", SEARCH, "s.yaml.seeds: expected"),
    ("study empty choice", SEARCH, "params.optim.lr.values: expected a non-empty list"),
    ("study low above high", SEARCH, "params.optim.lr.low: must be below high"),
    ("study loguniform low 0", SEARCH, "params.optim.lr.low: loguniform needs low > 0"),
    ("study scientific uniform", SEARCH, "a scientific parameter must be grid or choice"),
    ("study pruner typo", SEARCH, "did you mean 'median'?"),
    ("study pruner startup -1", SEARCH, "pruner.options: the median pruner refuses these options"),
    ("study percentile 150", SEARCH, "pruner.options: the percentile pruner refuses"),
    ("study asha factor 0", SEARCH, "pruner.options: the asha pruner refuses"),
    ("study pruner metric bogus", SEARCH, "s.yaml.pruner.metric: expected one of"),
    ("study pruner metric direction", SEARCH, "s.yaml.pruner.metric: val_loss_ema is better when minimised"),
    (
        "study pruner on an average not kept",
        SEARCH,
        "s.yaml.pruner.metric: val_top1_ema is the weight average's",
    ),
    ("study sampler option type", SEARCH, "sampler.options.n_startup_trials: expected int"),
    ("study name escapes", SEARCH, "s.yaml.name: expected letters, digits"),
    ("study metric bogus", SEARCH, "s.yaml.metric: expected one of"),
    ("study mode min on top-1", SEARCH, "s.yaml.mode: val_top1 is better when maximised"),
    ("study gpus inf", SEARCH, "resources.gpus: expected a finite number"),
    ("study cpus 0", SEARCH, "resources.cpus: expected a positive number"),
    ("study profiles 5", SEARCH, "s.yaml.profiles: expected a mapping"),
    ("study unknown profile", SEARCH, "s.yaml.profiles.quick: unknown profile"),
    ("study margin negative", SEARCH, "s.yaml.margin: expected a positive number"),
    ("study alpha 0.7", SEARCH, "s.yaml.alpha: expected a number in (0, 0.5)"),
    ("study max_seeds below seeds", SEARCH, "sequential.max_seeds: must exceed the 2 starting seeds"),
    ("study num_samples without nuisance", SEARCH, "num_samples: must be 1 when nothing is tuned"),
    ("study max_failures 99", SEARCH, "max_failures: expected an integer from 0 to 10"),
    ("study int bound inf", SEARCH, "params.epochs.high: expected"),
    ("study file is a folder", ["search", "{tmp}/s.yaml", "--dry-run"], "s.yaml"),
    ("study batch_size above the training set", SEARCH, "overrides: batch_size: 5001 is more than"),
    ("study alias bomb", SEARCH, "s.yaml"),
    ("study duplicate key", SEARCH, "s.yaml"),
    ("study not a mapping", SEARCH, "s.yaml: expected a mapping of study fields"),
    ("--set seedz", [*SEARCH, "--set", "seedz=2"], "did you mean 'seeds'?"),
    ("--set seed", [*SEARCH, "--set", "seed=3"], "set seeds=N"),
    ("--set no equals", [*SEARCH, "--set", "seeds"], "expected key=value"),
    ("--set bad YAML", [*SEARCH, "--set", "seeds=[1,"], "--set"),
    ("--run escapes", [*SEARCH, "--run", "../x"], "--run ../x: expected a folder name inside --results"),
    ("--run absolute", [*SEARCH, "--run", "/tmp/x"], "--run /tmp/x: expected a folder name inside --results"),
    ("--num-samples 0", [*SEARCH, "--num-samples", "0"], "--num-samples: expected a positive integer"),
    ("--budget 5x", [*SEARCH, "--budget", "5x"], "--budget 5x: expected a positive duration"),
    ("--max-seeds 1", [*SEARCH, "--max-seeds", "1"], "sequential.max_seeds: expected an integer >= 2"),
    ("--resume without a run", [*SEARCH, "--resume"], "--resume: no run of study tiny"),
    ("unknown study", ["search", "init_vs_wdd", "--dry-run"], "unknown study 'init_vs_wdd'"),
    ("ablation unknown level", ABLATE, "design[0].levels.weight_decay: 'maybe' is not an alternative"),
    ("ablation nuisance low above high", ABLATE, "nuisance.lr.low: must be below high"),
    ("ablation unknown recipe", ABLATE, "recipe: unknown recipe 'smok'"),
    ("ablation num_samples 0", ABLATE, "num_samples: expected a positive integer"),
    ("ablation old key", ABLATE, "trials_per_arm: unknown key"),
    ("ablation same as baseline", ABLATE, "is the same recipe as the baseline"),
    ("ablation tune seed compared", ABLATE, "the compared seeds must be fresh"),
    ("ablation batch_size above the training set", ABLATE, "batch_size: 5001 is more than"),
    ("unknown ablation", ["ablate", "seed_stdy", "--dry-run"], "unknown ablation 'seed_stdy'"),
    ("report missing path", ["report", "{tmp}/nothing"], "nothing: no such file or folder"),
    ("report empty folder", ["report", "{tmp}/empty"], "no tinyab records found"),
    ("report study.yaml not YAML", ["report", "{tmp}/recs"], "study.yaml: not valid YAML"),
    ("report study.yaml a list", ["report", "{tmp}/recs"], "study.yaml: expected a mapping"),
    ("report --alpha 2", ["report", "{tmp}/recs", "--alpha", "2"], "--alpha 2.0: expected a number"),
    ("report --margin -1", ["report", "{tmp}/recs", "--margin", "-1"], "--margin -1.0: expected a positive"),
    (
        "report --baseline bad",
        ["report", "{tmp}/recs", "--baseline", "nokey"],
        "--baseline nokey: expected KEY=VALUE",
    ),
    (
        "report --metric unknown",
        ["report", "{tmp}/recs", "--metric", "best_val_top2"],
        "--metric best_val_top2",
    ),
    ("report --out is a file", ["report", "{tmp}/recs", "--out", "{tmp}/file"], "file"),
    ("data info not a dataset", ["data", "info", "{tmp}/file"], "file"),
    ("data download url not a url", ["data", "download", "--dir", "{tmp}/d", "--url", "notaurl"], "notaurl"),
    ("data download ftp url", ["data", "download", "--dir", "{tmp}/d", "--url", "ftp://x/y.zip"], "ftp://"),
    (
        "data download archive with a corrupt JPEG",
        ["data", "download", "--dir", "{tmp}", "--url", "{bad_archive}"],
        f"{FIRST_JPEG}: corrupt JPEG",
    ),
    ("dashboard not a run", ["dashboard", "{tmp}/empty"], "no optuna.db here"),
]
GOOD_RECORDS = "name: recs\nkind: search\nmetric: val_top1\nmode: max\nparams: {}\n"
SETUP: dict[str, Callable[[Path], None]] = {
    "train recipe is a folder": folder("r.yaml"),
    "train recipe not UTF-8": text_file("bin.yaml", b"epochs: \xff\xfe\n"),
    "train recipe malformed": text_file("bad.yaml", "epochs: [1, 2\nmodel: x\n"),
    "train recipe alias bomb": text_file("bomb.yaml", BOMB),
    "train recipe duplicate key": text_file("dup.yaml", "epochs: 3\nepochs: 4\n"),
    "train --out is a file": text_file("file", "x"),
    "train --out under a file": text_file("file", "x"),
    "search --results is a file": lambda tmp: (yaml_file("s.yaml", STUDY)(tmp), text_file("file", "x")(tmp)),
    "train --data not a zip": text_file("file", "not a zip"),
    "study unknown key": yaml_file("s.yaml", edited(STUDY, optimiser=1)),
    "study seeds three": yaml_file("s.yaml", edited(STUDY, seeds="three")),
    "study seeds 0": yaml_file("s.yaml", edited(STUDY, seeds=0)),
    "study seeds repeated": yaml_file("s.yaml", edited(STUDY, seeds=[1, 1])),
    "study empty choice": yaml_file(
        "s.yaml", edited(STUDY, **{"params/optim.lr": {"role": "nuisance", "type": "choice", "values": []}})
    ),
    "study low above high": yaml_file("s.yaml", edited(STUDY, **{"params/optim.lr/low": 0.9})),
    "study loguniform low 0": yaml_file("s.yaml", edited(STUDY, **{"params/optim.lr/low": 0.0})),
    "study scientific uniform": yaml_file("s.yaml", edited(STUDY, **{"params/optim.lr/role": "scientific"})),
    "study pruner typo": yaml_file("s.yaml", edited(STUDY, pruner={"name": "medain"})),
    "study pruner startup -1": yaml_file(
        "s.yaml", edited(STUDY, pruner={"name": "median", "options": {"n_startup_trials": -1}})
    ),
    "study percentile 150": yaml_file(
        "s.yaml", edited(STUDY, pruner={"name": "percentile", "options": {"percentile": 150}})
    ),
    "study asha factor 0": yaml_file(
        "s.yaml", edited(STUDY, pruner={"name": "asha", "options": {"reduction_factor": 0}})
    ),
    "study pruner metric bogus": yaml_file(
        "s.yaml", edited(STUDY, pruner={"name": "median", "metric": "val_top1_swa"})
    ),
    "study pruner metric direction": yaml_file(
        "s.yaml",
        edited(
            STUDY,
            pruner={"name": "median", "metric": "val_loss_ema"},
            overrides={"epochs": 2, "ema_epochs": 1},
        ),
    ),
    "study pruner on an average not kept": yaml_file(
        "s.yaml", edited(STUDY, pruner={"name": "median", "metric": "val_top1_ema"})
    ),
    "study sampler option type": yaml_file(
        "s.yaml", edited(STUDY, sampler={"name": "tpe", "options": {"n_startup_trials": "ten"}})
    ),
    "study name escapes": yaml_file("s.yaml", edited(STUDY, name="../../x")),
    "study metric bogus": yaml_file("s.yaml", edited(STUDY, metric="accuracy")),
    "study mode min on top-1": yaml_file("s.yaml", edited(STUDY, mode="min")),
    "study gpus inf": yaml_file("s.yaml", edited(STUDY, resources={"gpus": float("inf")})),
    "study cpus 0": yaml_file("s.yaml", edited(STUDY, resources={"cpus": 0})),
    "study profiles 5": yaml_file("s.yaml", edited(STUDY, profiles=5)),
    "study unknown profile": yaml_file("s.yaml", edited(STUDY, profiles={"quick": {}})),
    "study margin negative": yaml_file("s.yaml", edited(STUDY, margin=-0.01)),
    "study alpha 0.7": yaml_file("s.yaml", edited(STUDY, alpha=0.7)),
    "study max_seeds below seeds": yaml_file("s.yaml", edited(STUDY, sequential={"max_seeds": 2})),
    "study num_samples without nuisance": yaml_file("s.yaml", edited(STUDY, **{"params/optim.lr": None})),
    "study max_failures 99": yaml_file("s.yaml", edited(STUDY, max_failures=99)),
    "study batch_size above the training set": yaml_file(
        "s.yaml", edited(STUDY, overrides={"epochs": 2, "batch_size": 5001})
    ),
    "study int bound inf": yaml_file(
        "s.yaml",
        edited(
            STUDY, **{"params/epochs": {"role": "nuisance", "type": "int", "low": 1, "high": float("inf")}}
        ),
    ),
    "study file is a folder": folder("s.yaml"),
    "study alias bomb": text_file("s.yaml", BOMB),
    "study duplicate key": text_file("s.yaml", yaml.safe_dump(STUDY) + "seeds: 5\n"),
    "study not a mapping": text_file("s.yaml", "- a\n- b\n"),
    "ablation unknown level": yaml_file(
        "a.yaml", edited(ABLATION, design=[{"name": "x", "levels": {"weight_decay": "maybe"}}])
    ),
    "ablation nuisance low above high": yaml_file("a.yaml", edited(ABLATION, **{"nuisance/lr/low": 0.9})),
    "ablation unknown recipe": yaml_file("a.yaml", edited(ABLATION, recipe="smok")),
    "ablation num_samples 0": yaml_file("a.yaml", edited(ABLATION, num_samples=0)),
    "ablation old key": yaml_file("a.yaml", edited(ABLATION, trials_per_arm=2)),
    "ablation same as baseline": yaml_file(
        "a.yaml",
        edited(ABLATION, **{"components/weight_decay/alternatives/none": {"optim.weight_decay": 5.0e-4}}),
    ),
    "ablation tune seed compared": yaml_file("a.yaml", edited(ABLATION, seeds=[1000, 1])),
    "ablation batch_size above the training set": yaml_file(
        "a.yaml", edited(ABLATION, overrides={"batch_size": 5001})
    ),
    "report empty folder": folder("empty"),
    "report study.yaml not YAML": records_with("name: [unclosed\n"),
    "report study.yaml a list": records_with("- 1\n- 2\n"),
    "report --alpha 2": records_with(GOOD_RECORDS),
    "report --margin -1": records_with(GOOD_RECORDS),
    "report --baseline bad": records_with(GOOD_RECORDS),
    "report --metric unknown": records_with(GOOD_RECORDS),
    "report --out is a file": lambda tmp: (records_with(GOOD_RECORDS)(tmp), text_file("file", "x")(tmp)),
    "data info not a dataset": text_file("file", "x"),
    "dashboard not a run": folder("empty"),
}
for name in [c[0] for c in CASES if c[1] is SEARCH or c[1][:2] == SEARCH[:2]]:
    SETUP.setdefault(name, yaml_file("s.yaml", STUDY))


def unchanged(run: Path) -> None:
    """The run folder as training left it."""


def truncated(run: Path) -> None:
    last = run / "checkpoints" / "last.pt"
    last.write_bytes(last.read_bytes()[:1000])


def foreign_model(run: Path) -> None:
    last = run / "checkpoints" / "last.pt"
    state = torch.load(last, weights_only=True)
    save_checkpoint({**state, "model": build_model(ModelConfig(arch="resnet18"), 10).state_dict()}, last)


RESUMED: dict[str, Callable[[Path], None]] = {
    "resume another recipe": unchanged,
    "resume more one_cycle epochs": unchanged,
    "resume truncated checkpoint": truncated,
    "resume garbage checkpoint": text_file("checkpoints/last.pt", b"\x80\x02" + b"garbage" * 100),
    "resume another model's checkpoint": foreign_model,
}
ANNOUNCED = {"data download archive with a corrupt JPEG"}


@pytest.fixture(scope="session")
def trained_run(mini_zip: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("corpus") / "run"
    train(load_recipe("smoke", RESUMABLE), data=mini_zip, out_dir=out, progress=False)
    return out


@pytest.fixture(scope="session")
def bad_archive(mini_zip: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    archive = tmp_path_factory.mktemp("corpus") / "tiny-imagenet-200.zip"
    return mini_with(mini_zip, archive, {FIRST_JPEG: b"not a JPEG" * 100})


def snapshot(root: Path) -> dict[str, tuple[int, float]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime) for p in root.rglob("*")}


@pytest.mark.parametrize(("case", "argv", "expected"), CASES, ids=[c[0] for c in CASES])
def test_every_bad_input_is_answered_in_one_line_and_changes_nothing(
    case: str,
    argv: list[str],
    expected: str,
    tmp_path: Path,
    mini_zip: Path,
    capsys: pytest.CaptureFixture[str],
    request: pytest.FixtureRequest,
) -> None:
    if case in SETUP:
        SETUP[case](tmp_path)
    if case in RESUMED:
        RESUMED[case](shutil.copytree(request.getfixturevalue("trained_run"), tmp_path / "run"))
    before = snapshot(tmp_path)
    fill = {"{zip}": str(mini_zip), "{tmp}": str(tmp_path)}
    if "{bad_archive}" in argv:
        fill["{bad_archive}"] = request.getfixturevalue("bad_archive").as_uri()
    args = [functools.reduce(lambda a, kv: a.replace(*kv), fill.items(), arg) for arg in argv]
    try:
        code = main(args)
    finally:
        for path in tmp_path.rglob("*"):  # let pytest clean up read-only folders
            if path.is_dir():
                path.chmod(path.stat().st_mode | stat.S_IWUSR)
    captured = capsys.readouterr()
    err = captured.err.strip()
    if case in ANNOUNCED:
        announcement, _, err = err.partition("\n")
        assert announcement.startswith("tinyab: downloading "), announcement
    assert code == 2, (code, err)
    assert "Traceback" not in captured.err + captured.out
    assert len(err.splitlines()) == 1 and err.startswith("tinyab: error: "), err
    assert expected in err, err
    assert snapshot(tmp_path) == before  # nothing created or changed


def test_the_corpus_is_large_enough() -> None:
    assert len(CASES) >= 80 and len({c[0] for c in CASES}) == len(CASES)
    assert os.environ.get("TINYAB_HOME")  # the conftest keeps caches out of the user's home
