"""``ray job submit -- tinyab search …`` on a real ``ray start --head`` cluster with its dashboard: the
driver runs as a Ray job and connects to that cluster ($RAY_ADDRESS), its progress is the job's log,
and every trial can be found on the dashboard: the log of the actor that ran it names its id, arm and
seed (what the dashboard's actor page shows, read here through Ray's state API)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers.raycluster import RAY, TOKEN_ENV, RayCluster
from helpers.runs import TINY, read_csv

pytestmark = pytest.mark.slow


def ray_cli(*args: str) -> str:
    env = {**os.environ, **TOKEN_ENV}
    done = subprocess.run([str(RAY), *args], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def job(cluster: RayCluster, mini_zip: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple:
    results = tmp_path_factory.mktemp("job")
    search = [sys.executable, "-m", "tinyab", "search", "init_vs_wd", "--profile", "smoke"]
    search += ["--data", str(mini_zip), "--results", str(results), *TINY]
    env = {key: value for key, value in os.environ.items() if key != "RAY_ADDRESS"} | TOKEN_ENV
    submit = [str(RAY), "job", "submit", "--address", cluster.api, "--", *search]
    deadline = time.monotonic() + 90
    while True:  # the head's job agent starts a little after `ray start` returns
        submitted = subprocess.run(submit, env=env, capture_output=True, text=True, timeout=420)
        if "No available agent" not in submitted.stderr or time.monotonic() > deadline:
            break
        time.sleep(2)
    job_id = re.search(r"Job '(raysubmit_\w+)'", submitted.stdout + submitted.stderr)
    assert job_id, submitted.stdout + submitted.stderr
    jobs = json.loads(ray_cli("list", "jobs", "--address", cluster.api, "--format", "json"))
    ray_job = next(j["job_id"] for j in jobs if j["submission_id"] == job_id.group(1))
    actors = ray_cli("list", "actors", "--address", cluster.api, "--format", "json", "--limit", "10000")
    logs = {
        actor["actor_id"]: ray_cli("logs", "actor", "--id", actor["actor_id"], "--address", cluster.address)
        for actor in json.loads(actors)
        if actor["class_name"] == "ImplicitFunc" and actor["job_id"] == ray_job
    }
    return cluster.address, submitted, next(results.glob("init_vs_wd/*")), logs


def test_the_driver_runs_as_a_job_on_the_cluster_and_its_progress_is_the_jobs_log(job: tuple) -> None:
    address, submitted, run_dir, _ = job
    log = submitted.stdout + submitted.stderr
    assert submitted.returncode == 0, log
    assert re.search(r"Job 'raysubmit_\w+' succeeded", log)
    port = address.rsplit(":", 1)[1]
    assert re.search(rf"ray: Ray at [\d.]+:{port}, 2 CPU", log)  # the job's cluster, not a new local Ray
    assert "trials: 12 (0 already recorded, 12 to run)" in log
    assert len(re.findall(r"^\[\s*\d+:\d\d\] t00\d\d completed ", log, re.M)) == 12  # timed, one per trial
    assert f"next: tinyab report {run_dir}" in log
    trials = read_csv(run_dir / "trials.csv")
    assert sorted(t["trial_id"] for t in trials) == [f"t{i:04d}" for i in range(12)]
    assert {t["status"] for t in trials} == {"completed"}


def test_every_trial_is_named_with_its_arm_and_seed_in_the_log_of_the_actor_that_ran_it(job: tuple) -> None:
    _, _, run_dir, logs = job
    started = {}
    for actor, text in logs.items():
        for trial_id, label in re.findall(r"^tinyab trial (t\d{4}) (.*): started on ", text, re.M):
            assert trial_id not in started, f"{trial_id} started twice"
            started[trial_id] = (actor, label)
            assert f"tinyab trial {trial_id} {label}: completed" in text
    trials = read_csv(run_dir / "trials.csv")
    assert sorted(started) == sorted(t["trial_id"] for t in trials)
    for t in trials:
        expected = (
            f"scheme={t['init.scheme']} weight_decay={float(t['optim.weight_decay']):g} seed={t['seed']}"
        )
        assert started[t["trial_id"]][1] == expected
