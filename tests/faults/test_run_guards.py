"""Resume refuses what cannot resume, and one driver holds a run at a time (no Ray needed: a held run is
refused before Ray starts)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest

from tinyab.errors import UserError
from tinyab.records.lock import LOCK, pid_alive, run_lock
from tinyab.records.reader import find_runs
from tinyab.records.writer import RecordsWriter
from tinyab.study.optuna_bridge import open_storage
from tinyab.study.run import find_run_dir


def test_a_second_driver_is_refused_while_the_first_lives_and_a_dead_ones_lock_is_taken_over(
    tmp_path: Path,
) -> None:
    holder = subprocess.Popen(["sleep", "30"])
    try:
        lock = {"pid": holder.pid, "host": socket.gethostname(), "started": time.time()}
        (tmp_path / LOCK).write_text(json.dumps(lock))
        with pytest.raises(UserError, match=rf"held by PID {holder.pid} on "), run_lock(tmp_path):
            pass
        assert (tmp_path / LOCK).is_file()  # the holder's lock is left alone
    finally:
        holder.kill()
        holder.wait()
    notes: list[str] = []
    with run_lock(tmp_path, notes.append):  # the holder is dead now: taken over, with a note
        assert json.loads((tmp_path / LOCK).read_text())["pid"] == os.getpid()
    assert notes and f"left by PID {holder.pid}, which is gone" in notes[0]
    assert not (tmp_path / LOCK).exists()  # released at the end


def test_a_lock_from_another_host_is_never_taken_over(tmp_path: Path) -> None:
    (tmp_path / LOCK).write_text(json.dumps({"pid": 1, "host": "elsewhere", "started": 0}))
    with pytest.raises(UserError, match="held by PID 1 on host elsewhere"), run_lock(tmp_path):
        pass


def test_a_corrupt_or_foreign_optuna_db_is_refused_in_one_line(tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.db"
    corrupt.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(UserError, match=r"corrupt.db: not a readable Optuna database") as err:
        open_storage(corrupt, "init_vs_wd")
    assert "\n" not in str(err.value)
    foreign = tmp_path / "foreign.db"
    optuna.create_study(storage=f"sqlite:///{foreign}", study_name="someone else's study")
    with pytest.raises(UserError, match="holds Optuna study 'someone else's study', not one of study"):
        open_storage(foreign, "init_vs_wd")
    mine = tmp_path / "mine.db"
    optuna.create_study(storage=f"sqlite:///{mine}", study_name="init_vs_wd [0] init.scheme=xavier")
    open_storage(mine, "init_vs_wd")  # its own arms: fine


def test_the_report_refuses_records_with_a_trial_recorded_twice(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from helpers.records import write_factorial
    from tinyab.cli import main

    run = write_factorial(tmp_path / "init_vs_wd" / "run1")
    lines = (run / "trials.csv").read_text().splitlines(keepends=True)
    (run / "trials.csv").write_text("".join([*lines, lines[3], lines[4]]))  # two rows appended again
    before = sorted(p.name for p in run.iterdir())
    assert main(["report", str(run)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "trials.csv: trial " in err and "2 trial(s) duplicated" in err
    assert sorted(p.name for p in run.iterdir()) == before  # no report folder written


def test_a_zombie_driver_does_not_hold_its_run(tmp_path: Path) -> None:
    """A killed driver its parent has not reaped yet is dead: its lock is taken over."""
    child = subprocess.Popen(["sleep", "30"])
    try:
        lock = {"pid": child.pid, "host": socket.gethostname(), "started": time.time()}
        (tmp_path / LOCK).write_text(json.dumps(lock))
        child.kill()
        deadline = time.monotonic() + 10
        while Path(f"/proc/{child.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
            assert time.monotonic() < deadline, "the child never became a zombie"
            time.sleep(0.05)
        assert not pid_alive(child.pid)
        notes: list[str] = []
        with run_lock(tmp_path, notes.append):
            assert json.loads((tmp_path / LOCK).read_text())["pid"] == os.getpid()
        assert f"left by PID {child.pid}, which is gone" in notes[0]
    finally:
        child.wait()
    assert pid_alive(os.getpid())


def test_a_run_folder_appears_whole_or_not_at_all(tmp_path: Path) -> None:
    """A new run is made under a hidden name and renamed into place; a leftover hidden folder (a driver
    killed while making one) is neither resumed nor reported."""
    run_dir = tmp_path / "study" / "smoke-20260101-000000"
    RecordsWriter(run_dir, ["x"], "val_top1").create({"name": "study", "seeds": [0]}, {"python": "3"})
    assert sorted(p.name for p in run_dir.iterdir()) == [
        "environment.json",
        "epochs.csv",
        "per_class.csv",
        "study.yaml",
        "trials.csv",
    ]
    assert [p.name for p in run_dir.parent.iterdir()] == [run_dir.name]  # nothing left beside it
    with pytest.raises(UserError, match="already exists; pass --resume"):
        RecordsWriter(run_dir, ["x"], "val_top1").create({"name": "study"}, {})
    leftover = run_dir.with_name(".smoke-20260102-000000.abc123")
    shutil.copytree(run_dir, leftover)
    assert find_run_dir(tmp_path, "study", "smoke", None) == run_dir
    assert find_runs(tmp_path) == [run_dir]


def test_a_resume_of_a_held_run_is_refused_before_ray_starts(mini_zip: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "init_vs_wd" / "smoke-20260101-000000"
    run_dir.mkdir(parents=True)
    holder = subprocess.Popen(["sleep", "30"])
    try:
        lock = {"pid": holder.pid, "host": socket.gethostname(), "started": time.time()}
        (run_dir / LOCK).write_text(json.dumps(lock))
        command = [sys.executable, "-m", "tinyab", "search", "init_vs_wd", "--profile", "smoke"]
        command += ["--data", str(mini_zip), "--results", str(tmp_path), "--resume"]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    finally:
        holder.kill()
        holder.wait()
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.strip().splitlines() == [
        f"tinyab: error: {run_dir}: held by PID {holder.pid} on {socket.gethostname()} since "
        + time.strftime("%H:%M:%S", time.localtime(lock["started"]))
        + "; wait for it or stop it"
    ]
    assert "ray:" not in done.stdout  # refused before a local Ray was started


def test_a_run_written_before_the_weight_average_columns_is_refused_naming_its_epochs_file(
    tmp_path: Path,
) -> None:
    """epochs.csv of an older tinyab lacks val_loss_ema and val_top1_ema: resume says so, changes nothing."""
    run = tmp_path / "run"
    writer = RecordsWriter(run, ["init.scheme"], "val_top1")
    writer.create({"name": "s"}, {})
    epochs = run / "epochs.csv"
    header = epochs.read_text().strip().split(",")
    old = ",".join(c for c in header if not c.endswith("_ema")) + "\n"
    epochs.write_text(old)
    with pytest.raises(UserError, match=r"epochs.csv: columns differ .* another version of tinyab"):
        RecordsWriter(run, ["init.scheme"], "val_top1").reopen()
    assert epochs.read_text() == old
