"""tinyab search on real Ray and real SQLite: Optuna's pruner stopping trials, failures, a killed driver
resumed, on a 2-node cluster (two ``ray start`` nodes on this machine: the ``cluster`` fixture)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import ray.cloudpickle
import yaml

from helpers import curves
from helpers.curves import BASE, CURVES_STUDY, EPOCHS, KINDS, WARMUP, curve_train, expected_pruning
from helpers.raycluster import TOKEN_ENV, RayCluster
from helpers.runs import TINY, optuna_trials, read_csv
from tinyab.study.ray_runtime import RayOptions
from tinyab.study.run import RunOptions, run_search
from tinyab.study.spec import SearchStudy, build_study

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parent.parent
ray.cloudpickle.register_pickle_by_value(curves)  # workers cannot import tests/


# Optuna's MedianPruner, run by tinyab inside Ray Tune, on fixed curves


def run_curves(results: str, address: str) -> None:
    """The driver of the curves study (run in a subprocess: it needs RAY_AUTH_MODE=token from the start)."""
    study = build_study(SearchStudy, CURVES_STUDY, Path("curves.yaml"), None)
    run_dir = Path(results) / "curves" / "run"
    options = RunOptions("default", "curves.yaml", ray=RayOptions(address), train_fn=curve_train)
    outcome = run_search(study, run_dir, options)
    print(f"RUN_DIR={outcome.run_dir}")


@pytest.fixture(scope="module")
def pruned_run(cluster: RayCluster, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    results = tmp_path_factory.mktemp("pruning")
    driver = (
        f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import {Path(__file__).stem} as t; "
    )
    driver += f"t.run_curves({str(results)!r}, {cluster.address!r})"
    env = {**os.environ, **TOKEN_ENV}
    done = subprocess.run(
        [sys.executable, "-c", driver], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
    run_dir = Path(done.stdout.strip().splitlines()[-1].removeprefix("RUN_DIR="))
    return run_dir, done.stdout


def test_median_pruner_stops_exactly_the_expected_trials_at_the_expected_epoch(pruned_run: tuple) -> None:
    run_dir, _ = pruned_run
    trials = read_csv(run_dir / "trials.csv")
    seeds = list(range(len(KINDS)))
    expected = {}
    for scheme in BASE:
        for seed, epoch in expected_pruning(scheme, seeds, n_startup=2).items():
            expected[(scheme, seed)] = epoch
    # the reference is not trivial: bad curves stop right after the warm-up, nothing else stops
    assert expected == {(s, seed): WARMUP + 1 for s in BASE for seed in (2, 4)}
    got = {
        (t["init.scheme"], int(t["seed"])): int(t["epochs_run"]) for t in trials if t["status"] == "pruned"
    }
    assert got == expected
    completed = {(t["init.scheme"], int(t["seed"])) for t in trials if t["status"] == "completed"}
    assert completed == {(s, seed) for s in BASE for seed in (0, 1, 3, 5)}  # xavier's good ones too
    epochs = read_csv(run_dir / "epochs.csv")
    by_trial = {t["trial_id"]: (t["init.scheme"], int(t["seed"])) for t in trials}
    for trial_id, key in by_trial.items():
        rows = [int(e["epoch"]) for e in epochs if e["trial_id"] == trial_id]
        assert rows == list(range(1, expected.get(key, EPOCHS if KINDS[key[1]] != "broken" else 0) + 1))
    states = {t.trial: (t.state, t.step) for t in optuna_trials(run_dir / "optuna.db")}
    for trial_id, key in by_trial.items():
        if key in expected:
            assert states[trial_id] == ("PRUNED", expected[key])
        elif KINDS[key[1]] != "broken":
            assert states[trial_id] == ("COMPLETE", EPOCHS)


def test_a_failing_trial_is_recorded_with_its_first_line_and_the_search_goes_on(pruned_run: tuple) -> None:
    run_dir, summary = pruned_run
    trials = read_csv(run_dir / "trials.csv")
    failed = [t for t in trials if t["status"] == "failed"]
    assert sorted(t["init.scheme"] for t in failed) == sorted(BASE)
    assert {t["error"] for t in failed} == {f"RuntimeError: curve {KINDS.index('broken')} broke"}
    assert len(trials) == len(KINDS) * len(BASE)
    states = {t.trial: t.state for t in optuna_trials(run_dir / "optuna.db")}
    assert {states[t["trial_id"]] for t in failed} == {"FAIL"}
    assert f"failed: {failed[0]['trial_id']}" in summary and "RuntimeError: curve 6 broke" in summary
    assert f"records: {run_dir}" in summary and "incomplete" not in summary


# The real CLI and engine on the 2-node cluster: kill the driver mid-run, resume, check the records


@pytest.fixture(scope="module")
def killed_and_resumed(
    cluster: RayCluster, mini_zip: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple:
    results = tmp_path_factory.mktemp("kill")
    command = [
        sys.executable,
        "-m",
        "tinyab",
        "search",
        "init_vs_wd",
        "--profile",
        "smoke",
        "--data",
        str(mini_zip),
    ]
    command += ["--results", str(results), "--address", cluster.address, *TINY]
    env = {**os.environ, **TOKEN_ENV}
    driver = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 240
    trials_csv = None
    while time.monotonic() < deadline and driver.poll() is None:
        found = list(results.glob("init_vs_wd/*/trials.csv"))
        if found and len(read_csv(found[0])) >= 3:
            trials_csv = found[0]
            break
        time.sleep(0.1)
    driver.send_signal(signal.SIGKILL)
    first_output = driver.communicate()[0].decode()
    assert trials_csv is not None, first_output
    before = read_csv(trials_csv)
    resumed = subprocess.run(
        [*command, "--resume"], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )
    return trials_csv.parent, before, resumed, first_output


def test_a_killed_driver_resumes_and_every_trial_is_recorded_exactly_once(killed_and_resumed: tuple) -> None:
    run_dir, before, resumed, _ = killed_and_resumed
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert 3 <= len(before) < 12, "the driver was not killed mid-run"
    trials = read_csv(run_dir / "trials.csv")
    ids = [t["trial_id"] for t in trials]
    assert sorted(ids) == [f"t{i:04d}" for i in range(12)]  # 2 schemes x 3 decays x 2 seeds, once each
    assert trials[: len(before)] == before  # what was recorded before the kill is kept as it was
    assert f"trials: 12 ({len(before)} already recorded, {12 - len(before)} to run)" in resumed.stdout
    assert all(t["status"] == "completed" for t in trials)
    epochs = read_csv(run_dir / "epochs.csv")
    assert sorted((e["trial_id"], e["epoch"]) for e in epochs) == sorted(
        (i, e) for i in ids for e in ("1", "2")
    )
    per_class = read_csv(run_dir / "per_class.csv")
    assert sorted((p["trial_id"], p["class_index"]) for p in per_class) == sorted(
        (i, c) for i in ids for c in "01"
    )
    states = optuna_trials(run_dir / "optuna.db")
    assert sorted(t.trial for t in states if t.state == "COMPLETE") == sorted(ids)  # one per trial
    assert {t.state for t in states if t.state != "COMPLETE"} <= {"FAIL"}  # abandoned by the kill
    # paired design: every arm ran with the same seeds
    seeds = {}
    for t in trials:
        seeds.setdefault((t["init.scheme"], t["optim.weight_decay"]), set()).add(t["seed"])
    assert len(seeds) == 6 and all(s == {"0", "1"} for s in seeds.values())
    study = yaml.safe_load((run_dir / "study.yaml").read_text())
    assert study["kind"] == "search" and study["seeds"] == [0, 1]
    environment = json.loads((run_dir / "environment.json").read_text())
    assert environment["packages"]["ray"] and environment["git"]["commit"]


def test_trials_ran_on_both_nodes_of_the_cluster(killed_and_resumed: tuple) -> None:
    run_dir, _, _resumed, first_output = killed_and_resumed
    nodes = {t["node"] for t in read_csv(run_dir / "trials.csv")}
    assert len(nodes) == 2, nodes  # two nodes on one machine: same IP, different node ids
    assert "2 CPU" in first_output and "ray: Ray at" in first_output


# The default path: a local Ray with its dashboard, the profile chosen automatically


def test_local_search_with_dashboard_and_auto_profile(mini_zip: Path, tmp_path: Path) -> None:
    import urllib.error
    import urllib.request

    from tinyab.study.ray_runtime import token_path

    command = [sys.executable, "-m", "tinyab", "search", "init_vs_wd", "--data", str(mini_zip)]
    command += ["--results", str(tmp_path), *TINY, "--set", "seeds=1"]
    env = {k: v for k, v in os.environ.items() if k != "RAY_AUTH_MODE"}
    driver = subprocess.Popen(
        command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    assert driver.stdout is not None
    lines = []
    for line in driver.stdout:
        lines.append(line)
        if line.startswith("dashboard:"):
            break
    url = lines[-1].split()[1]
    assert url.startswith("http://127.0.0.1:"), lines
    with urllib.request.urlopen(url + "/", timeout=10) as page:  # while the search runs
        assert page.status == 200
    with pytest.raises(urllib.error.HTTPError, match="401"):
        urllib.request.urlopen(url + "/api/version", timeout=10)
    token = token_path().read_text().strip()
    request = urllib.request.Request(url + "/api/version", headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.status == 200
    output = "".join(lines) + driver.stdout.read()
    assert driver.wait(timeout=300) == 0, output
    assert "profile: auto -> smoke (no GPU is visible" in output
    assert "trials: 6 (0 already recorded, 6 to run)" in output and "images to process: 720" in output
    (records,) = [line for line in output.splitlines() if line.startswith("records: ")]
    run_dir = Path(records.removeprefix("records: "))
    trials = read_csv(run_dir / "trials.csv")
    assert [t["status"] for t in trials] == ["completed"] * 6
    assert all(0.0 <= float(t["best_val_top1"]) <= 1.0 and t["device"] == "cpu" for t in trials)
