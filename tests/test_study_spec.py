"""Study files: the shipped studies, the plan they expand to, and one-line errors for bad files (no Ray)."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tinyab.cli import main
from tinyab.config import load_recipe
from tinyab.records import RecordsWriter, TrialRecord
from tinyab.study import catalog
from tinyab.study.plan import search_plan
from tinyab.study.spec import SearchStudy, build_study

SHIPPED = ["clr_bounds", "dropout", "init_vs_wd", "resolution_schedule", "seed_net2"]


def load_study(name: str, profile: str | None) -> SearchStudy:
    return catalog.load("search", catalog.locate("search", name), profile)


def build(data: dict, profile: str | None, overrides: dict | None = None) -> SearchStudy:
    return build_study(SearchStudy, data, Path("tiny.yaml"), profile, overrides)


def plan_trials(study: SearchStudy) -> list:
    return search_plan(study, "default", "tiny.yaml").slots()


GOOD = {
    "name": "tiny",
    "question": "Does it work?",
    "recipe": "smoke",
    "params": {
        "init.scheme": {"role": "scientific", "type": "grid", "values": ["variance_scaling", "xavier"]},
        "optim.lr": {"role": "nuisance", "type": "loguniform", "low": 0.01, "high": 0.5},
    },
    "num_samples": 2,
    "seeds": 3,
    "sampler": {"name": "tpe", "seed": 1},
    "pruner": {"name": "median", "warmup_epochs": 2},
    "profiles": {"smoke": {"seeds": 2}, "full": {}},
}


def test_shipped_studies_load_in_both_profiles() -> None:
    assert sorted(catalog.study_files("search")) == SHIPPED
    for name in SHIPPED:
        for profile in ("smoke", "full"):
            study = load_study(name, profile)
            assert study.question.endswith("?")
            assert plan_trials(study)


def test_init_vs_wd_smoke_meets_the_acceptance_shape() -> None:
    study = load_study("init_vs_wd", "smoke")
    assert study.params["init.scheme"].values == ["variance_scaling", "xavier"]
    wd = study.params["optim.weight_decay"].values
    assert len(wd) >= 3 and all(isinstance(v, float) for v in wd)  # YAML strings became floats
    assert len(study.seed_list) >= 3
    assert len(plan_trials(study)) == 2 * len(wd) * len(study.seed_list)


def test_grid_arms_are_crossed_with_the_same_seeds() -> None:
    study = build(GOOD, "smoke")
    slots = plan_trials(study)
    assert len(slots) == 2 * 2 * 2  # arms x num_samples x seeds
    assert len({s.trial_id for s in slots}) == len(slots)
    for arm in range(2):
        seeds = sorted(s.seed for s in slots if s.arm == arm and s.config == 0)
        assert seeds == [0, 1]  # every arm gets exactly the same seeds: paired comparisons


def test_set_overrides_go_to_the_study_or_the_recipe() -> None:
    study = build(GOOD, "full", {"seeds": 5, "epochs": 2, "data": {"classes": 3}})
    assert study.seed_list == [0, 1, 2, 3, 4]
    recipe = load_recipe(study.trial_recipe({"init.scheme": "xavier", "optim.lr": 0.1}, seed=4))
    assert (recipe.epochs, recipe.data.classes, recipe.init.scheme, recipe.seed) == (2, 3, "xavier", 4)
    resolved = search_plan(study, "full", "tiny.yaml").record
    assert resolved["kind"] == "search"
    assert resolved["params"]["epochs"] == {"role": "fixed", "value": 2}
    assert resolved["params"]["init.scheme"]["role"] == "scientific"


def test_spaces_lists_every_study_with_its_question(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["spaces"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split()[0] for line in lines] == SHIPPED
    assert all(line.rstrip().endswith("?") for line in lines)


def _bad(where: str, value: object) -> dict:
    """GOOD with one change: ``where`` is "key" or "section/key" (param keys keep their dots)."""
    data = yaml.safe_load(yaml.safe_dump(GOOD))
    *parents, last = where.split("/")
    node = data
    for part in parents:
        node = node[part]
    if value is None:
        del node[last]
    else:
        node[last] = value
    return data


BAD_FILES = [
    (_bad("optimiser", 1), "tiny.yaml.optimiser: unknown key"),
    (_bad("seeds", "three"), "tiny.yaml.seeds: expected"),
    (
        _bad("params/optim.lr", {"role": "nuisance", "type": "choice", "values": []}),
        "tiny.yaml.params.optim.lr.values: expected a non-empty list",
    ),
    (
        _bad("params/optim.lr", {"role": "nuisance", "type": "uniform", "low": 0.5, "high": 0.1}),
        "tiny.yaml.params.optim.lr.low: must be below high",
    ),
    (_bad("sampler", {"name": "tpee"}), "tiny.yaml.sampler.name: expected one of"),
    (_bad("pruner", {"name": "medain"}), "(did you mean 'median'?)"),
    (_bad("pruner", {"name": "median", "options": {"n_startup": 2}}), "tiny.yaml.pruner.options.n_startup"),
    (
        _bad("params/x", {"role": "scientific", "type": "uniform", "low": 0, "high": 1}),
        "a scientific parameter must be grid or choice",
    ),
    (_bad("question", None), "tiny.yaml.question: required field is missing"),
    (_bad("profiles/smoke", {"seeds": 0}), "tiny.yaml (profile smoke).seeds: expected"),
]


@pytest.mark.parametrize(("data", "message"), BAD_FILES, ids=[m for _, m in BAD_FILES])
def test_bad_study_files_exit_2_with_one_line_and_write_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], data: dict, message: str
) -> None:
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(data))
    results = tmp_path / "results"
    code = main(["search", str(path), "--profile", "smoke", "--results", str(results), "--data", "x.zip"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1, err
    assert err.startswith("tinyab: error: ") and str(path) in err and message in err, err
    assert not results.exists()


def test_empty_choice_list_and_unknown_recipe_field_are_named(tmp_path: Path) -> None:
    from tinyab.errors import ConfigError

    empty = _bad("params/optim.lr", {"role": "nuisance", "type": "choice", "values": []})
    with pytest.raises(ConfigError, match=r"tiny.yaml.params.optim.lr.values: expected a non-empty list"):
        build(empty, None)
    typo = _bad("params/optim.weight_decy", {"role": "scientific", "type": "grid", "values": [0.1]})
    with pytest.raises(ConfigError, match=r"not a recipe field \(did you mean 'optim.weight_decay'\?\)"):
        build(typo, None)
    wrong_value = _bad("params/init.scheme", {"role": "scientific", "type": "grid", "values": ["he"]})
    with pytest.raises(ConfigError, match=r"params.init.scheme: value 'he' rejected"):
        build(wrong_value, None)


def test_unknown_study_name_lists_the_available_ones(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["search", "init_vs_wdd", "--data", "x.zip"]) == 2
    err = capsys.readouterr().err.strip()
    assert "unknown study 'init_vs_wdd' (did you mean 'init_vs_wd'?)" in err
    assert all(name in err for name in SHIPPED)


def test_records_reopen_repairs_what_a_kill_leaves(tmp_path: Path) -> None:
    """A torn last line and detail rows of an unrecorded trial are dropped; recorded trials stay."""
    run = tmp_path / "run"
    writer = RecordsWriter(run, ["optim.lr"], "val_top1")
    writer.create({"name": "x"}, {"python": "3"})
    epoch = {"epoch": 1, "train_loss": 1.0, "val_loss": 1.0, "val_top1": 0.5}
    record = TrialRecord.from_epochs("t0000", "completed", 0, {"optim.lr": 0.1}, [epoch], "val_top1")
    writer.append(record, [epoch], [])
    writer._write("epochs.csv", [{**epoch, "trial_id": "t0001"}])  # killed before t0001's trials row
    writer.close()
    with (run / "trials.csv").open("a") as f:
        f.write("t0002,compl")  # killed mid-write
    finished = RecordsWriter(run, ["optim.lr"], "val_top1").reopen()
    assert list(finished) == ["t0000"]
    assert finished["t0000"].objective == 0.5 and finished["t0000"].values == {"optim.lr": "0.1"}
    with (run / "epochs.csv").open() as f:
        assert [row["trial_id"] for row in csv.DictReader(f)] == ["t0000"]
    assert (run / "trials.csv").read_text().endswith("\n")


def test_a_grown_plan_keeps_every_trial_id_and_adds_new_ones_after() -> None:
    plan = search_plan(build(GOOD, "smoke"), "smoke", "tiny.yaml")
    first = plan.slots()
    grown = plan.grow(seeds=[2, 3])
    slots = grown.slots()
    assert slots[: len(first)] == first  # nothing renumbered
    added = slots[len(first) :]
    assert sorted({(s.config, s.seed) for s in added}) == [(c, s) for c in (0, 1) for s in (2, 3)]
    assert [s.trial_id for s in slots] == [f"t{i:04d}" for i in range(len(slots))]
    assert grown.seeds == [0, 1, 2, 3] and plan.seeds == [0, 1]
    more = grown.grow(configs=3)
    assert more.slots()[: len(slots)] == slots
    assert {(s.config, s.seed) for s in more.slots()[len(slots) :]} == {(2, s) for s in (0, 1, 2, 3)}
    assert grown.grow(seeds=[0]) is grown  # nothing new: the same plan


def test_validating_a_study_imports_neither_ray_nor_optuna() -> None:
    code = (
        "import sys, pathlib, tinyab.study.spec as s; "
        "raw = {'name': 'x', 'question': 'q?', 'recipe': 'smoke'}; "
        "s.build_study(s.SearchStudy, raw, pathlib.Path('x'), None); "
        "print(sorted({'ray', 'optuna'} & set(sys.modules)))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_set_suggestions_come_from_the_study_vocabulary_first() -> None:
    from tinyab.errors import ConfigError

    with pytest.raises(
        ConfigError, match=r"seedz: neither a study nor a recipe field \(did you mean 'seeds'\?\)"
    ):
        build(GOOD, None, {"seedz": 2})
    with pytest.raises(ConfigError, match=r"epoch: neither .* \(did you mean 'epochs'\?\)"):
        build(GOOD, None, {"epoch": 2})
    with pytest.raises(ConfigError, match=r"seed: a study runs its arms on its seeds; set seeds="):
        build(GOOD, None, {"seed": 3})
    assert build(GOOD, None, {"seeds": 2, "epochs": 2}).seed_list == [0, 1]


def test_the_driver_of_a_search_never_imports_torch(mini_zip) -> None:
    """Only trials train: the driver's 2 s of torch import would be a whole trial's worth on a short study."""
    code = (
        "import sys; from tinyab.study import RunRequest, search; "
        f"search(RunRequest('init_vs_wd', data={str(mini_zip)!r}, dry_run=True), print); "
        "import tinyab.study.run, tinyab.study.tune_backend, tinyab.study.monitors, tinyab.data; "
        "print('torch' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.splitlines()[-1] == "False", done.stdout
