"""Reading synthetic study records (written by :mod:`helpers.records`) back: discovery, pooling, both
ways of writing a distribution, cut and malformed files, bad study.yaml."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers.records import INIT, WD, study_spec, write_factorial, write_run
from tinyab.errors import UserError
from tinyab.records.reader import find_runs, load_studies, read_records_csv


def test_find_runs_discovers_nested_runs(tmp_path: Path) -> None:
    write_factorial(tmp_path / "init_vs_wd" / "run1")
    write_factorial(tmp_path / "init_vs_wd" / "run2", rng_seed=1)
    (tmp_path / "other").mkdir()
    assert find_runs(tmp_path) == [tmp_path / "init_vs_wd" / "run1", tmp_path / "init_vs_wd" / "run2"]
    studies, skipped = load_studies(tmp_path)
    assert len(studies) == 1 and skipped == []
    trials = studies[0].trials
    assert len(trials) == 40 and trials["trial_id"].is_unique  # pooled runs keep distinct ids
    assert studies[0].varied_keys() == [INIT, WD]
    assert studies[0].distribution(WD) == "grid" and studies[0].listed_values(WD) == [5e-5, 5e-4]


def test_both_ways_of_writing_a_distribution_are_read(tmp_path: Path) -> None:
    spec = study_spec(params={INIT: {"role": "scientific", "choice": ["a", "b"]},
                              WD: {"role": "nuisance", "loguniform": [1e-5, 1e-2]}})  # fmt: skip
    rows = [{"trial_id": "t0", "status": "completed", "seed": 0, INIT: "a", WD: 1e-4, "final": 0.3}]
    studies, _ = load_studies(write_run(tmp_path / "run", spec, rows))
    assert (studies[0].distribution(INIT), studies[0].distribution(WD)) == ("choice", "loguniform")
    assert studies[0].listed_values(INIT) == ["a", "b"]


def test_cut_last_line_is_dropped_with_a_warning(tmp_path: Path) -> None:
    run = write_factorial(tmp_path / "run")
    text = (run / "trials.csv").read_text()
    (run / "trials.csv").write_text(text[: len(text) - 25])  # a killed writer: last row cut mid-line
    studies, _ = load_studies(run)
    assert len(studies[0].trials) == 19
    assert any("last line is incomplete" in w for w in studies[0].warnings)
    assert any("not finished yet" in w for w in studies[0].warnings)  # its epochs are ignored


def test_malformed_rows_are_counted(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("a,b\n1,2\n3,4,5\n6,7\n")
    warn: list[str] = []
    frame = read_records_csv(path, warn)
    assert frame["a"].tolist() == [1, 6] and warn == [f"{path}: 1 malformed row(s) ignored"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("- just\n- a list\n", "expected a mapping"),
        ("name: [unclosed\n", "not valid YAML"),
        ("name: x\nparams: [1]\n", "params: expected a mapping"),
    ],
)
def test_bad_study_yaml_names_the_file(tmp_path: Path, content: str, message: str) -> None:
    run = write_factorial(tmp_path / "run")
    (run / "study.yaml").write_text(content)
    with pytest.raises(UserError, match=message) as info:
        load_studies(tmp_path)
    assert "study.yaml" in str(info.value)


def test_empty_and_missing_folders(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no tinyab records found"):
        load_studies(tmp_path)
    with pytest.raises(UserError, match="no such file or folder"):
        load_studies(tmp_path / "nope")
    run = write_factorial(tmp_path / "run")
    (run / "trials.csv").write_text("trial_id,status,seed\n")
    with pytest.raises(UserError, match="no finished trials"):
        load_studies(tmp_path)
