"""One real search (``tinyab search init_vs_wd`` on a local Ray, TINY settings) interrupted again and again:
SIGKILL to the driver at seeded random moments (Python and Ray start-up, Tune start-up with the first
trials on cold workers, mid-run with trials in flight, near the end) and Ctrl-C once (SIGINT to the
driver's process group, as a terminal sends it), each followed by ``--resume``, then a last ``--resume``
to the end. After every interruption the records are whole; at the end every planned trial is recorded
once, Optuna's SQLite study agrees, and no Ray process of these runs is left.

The kill points come from a seeded generator: each session draws a seed, printed with the schedule and
in every assertion message; ``TINYAB_KILL_SEED=N`` replays a schedule (the moments, not Ray's timing).
"""

from __future__ import annotations

import contextlib
import csv
import io
import itertools
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from helpers.runs import (
    REPO,
    OptunaTrial,
    descendants,
    driver_env,
    optuna_trials,
    read_csv,
    search_command,
    still_running,
    torn,
)
from tinyab.records.lock import LOCK
from tinyab.study.ray_runtime import DRIVER_PID, TEMP_PREFIX, session_processes

pytestmark = pytest.mark.slow
SEED = int(os.environ.get("TINYAB_KILL_SEED") or random.SystemRandom().randrange(1_000_000))
REPLAY = f"seed {SEED} (replay: TINYAB_KILL_SEED={SEED} pytest tests/faults/test_kill_points.py)"
TRIALS, EPOCHS, CLASSES = 12, 2, 2  # init_vs_wd under TINY: 2 schemes x 3 weight decays x 2 seeds
PLANNED = [f"t{i:04d}" for i in range(TRIALS)]
RUN = "killed"
WAIT = 240  # seconds a driver may take to reach its kill point, or to finish
SETTLE = 15  # seconds a cleanly ended driver's Ray processes may take to go
FILES = ("trials.csv", "epochs.csv", "per_class.csv")


@dataclass(frozen=True)
class KillPoint:
    """When to interrupt one driver: seconds after its launch (at the latest when it prints its plan),
    seconds after it printed its plan (at the latest when it records its first trial), or ``delay``
    seconds after trials.csv holds ``records`` rows (at least one more than at its launch)."""

    signal: str  # SIGKILL: the driver alone; SIGINT: its process group, as Ctrl-C in a terminal
    after_launch: float | None = None
    after_plan: float | None = None
    records: int | None = None
    delay: float = 0.0

    def __str__(self) -> str:
        if self.after_launch is not None:
            return f"{self.signal} {self.after_launch:.2f}s after launch"  # or at the plan
        if self.after_plan is not None:
            return f"{self.signal} {self.after_plan:.2f}s after the plan"  # or at a first record
        return f"{self.signal} {self.delay:.2f}s after {self.records} recorded"


def kill_points(seed: int) -> list[KillPoint]:
    rng = random.Random(seed)
    k1, k2, k3 = sorted(rng.sample(range(1, 9), 3))  # leave trials to run after each
    return [
        KillPoint("SIGKILL", after_launch=rng.uniform(0.5, 10.0)),  # Python, Ray start-up, planning
        KillPoint("SIGKILL", after_plan=rng.uniform(0.0, 8.0)),  # Tune start-up, cold workers, first epochs
        KillPoint("SIGKILL", records=k1, delay=rng.uniform(0.0, 0.3)),  # trials in flight
        KillPoint("SIGINT", records=k2, delay=rng.uniform(0.0, 0.2)),  # Ctrl-C mid-run
        KillPoint("SIGKILL", records=k3, delay=rng.uniform(0.0, 0.3)),
        KillPoint("SIGKILL", records=TRIALS - 1, delay=rng.uniform(0.0, 0.4)),  # the last trial, or wrap-up
    ]


@dataclass
class Segment:
    """One driver from launch to end: what it was doing when interrupted and what it left behind."""

    point: KillPoint | None  # None: the last resume, run to its end
    resumed: bool
    pid: int = 0
    rc: int | None = None
    output: str = ""
    at: float | None = None  # seconds after launch when the signal went out (None: never sent)
    seconds: float = 0.0
    doing: str = ""
    rows_before: int = 0
    rows_after: int = 0
    files: dict[str, bytes] = field(default_factory=dict)  # the CSVs as the driver left them
    torn: list[str] = field(default_factory=list)
    optuna: list[OptunaTrial] | str | None = None  # as left (None: no database yet; str: unreadable)
    lock_left: bool = False
    processes: dict[int, tuple[str, str]] = field(default_factory=dict)  # all it started, seen as it ran
    folders: set[Path] = field(default_factory=set)  # its local Ray's temp dirs
    left: dict[int, str] = field(default_factory=dict)  # its processes still running when it ended
    lingering: dict[int, str] = field(default_factory=dict)  # still running SETTLE s later (clean ends)

    def open_trials(self) -> list[OptunaTrial]:
        """The Optuna trials it left open (asked or enqueued, never told)."""
        if not isinstance(self.optuna, list):
            return []
        return [t for t in self.optuna if t.state in ("RUNNING", "WAITING")]

    def line(self) -> str:
        what = str(self.point) if self.point else "last --resume"
        at = f"at {self.at:5.1f}s" if self.at is not None else "not sent"
        running = len(self.open_trials())
        return (
            f"{what:<32} {at:<10} rc={self.rc!s:<3} {self.seconds:5.1f}s rows {self.rows_before:>2}->"
            f"{self.rows_after:>2}, Optuna open {running}, Ray procs left {len(self.left)}: {self.doing}"
        )


def _rows(run_dir: Path) -> int:
    try:
        return max(0, (run_dir / "trials.csv").read_bytes().count(b"\n") - 1)
    except OSError:
        return 0


def _owned_folders(pid: int) -> set[Path]:
    """The local Ray temp dirs whose driver is ``pid``."""
    found = set()
    for folder in Path("/tmp").glob(f"{TEMP_PREFIX}*"):
        try:
            if (folder / DRIVER_PID).read_text() == str(pid):
                found.add(folder)
        except OSError:
            continue
    return found


def _doing(lines: list[str], before: int, run_dir: Path) -> str:
    """What the driver was doing, from what it printed and what it recorded."""

    def printed(prefix: str) -> bool:
        return any(line.lstrip().startswith(prefix) for line in lines)

    rows = _rows(run_dir)
    if not printed("profile:"):
        return "Python start-up (imports, study checks)"
    if not printed("ray:"):
        return "Ray start-up"
    if not printed("results:"):
        return "planning (records, lock, Optuna studies)"
    if rows >= TRIALS:
        return "wrap-up: every trial recorded (summary, Tune and Ray shutdown)"
    if rows == before:
        return "Tune start-up, first trials on cold workers"
    return f"mid-run: {rows}/{TRIALS} recorded"


def _due(
    point: KillPoint, now: float, plan_at: float | None, rows: int, before: int, met_at: float | None
) -> bool:
    """Whether the kill point is reached (``met_at``: when trials.csv first held the rows it waits for)."""
    if point.after_launch is not None:  # start-up on any machine: never past the plan
        return now >= point.after_launch or plan_at is not None
    if point.after_plan is not None:  # the first trials of the session: never past its first record
        return (plan_at is not None and now >= plan_at + point.after_plan) or rows > before
    return met_at is not None and now >= met_at + point.delay


def run_segment(command: list[str], run_dir: Path, point: KillPoint | None) -> Segment:
    """Launch the driver (``--resume`` once its run folder exists), interrupt it at ``point``, snapshot
    what it left."""
    seg = Segment(point, resumed=run_dir.exists(), rows_before=_rows(run_dir))
    proc = subprocess.Popen(
        [*command, *(["--resume"] if seg.resumed else [])],
        cwd=REPO,
        env=driver_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, like a terminal's foreground job
    )
    seg.pid = proc.pid
    start = time.monotonic()
    lines: list[str] = []
    plan_at: list[float] = []

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if line.lstrip().startswith("results:") and not plan_at:
                plan_at.append(time.monotonic() - start)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    due, met_at, next_scan, now = False, None, 0.0, 0.0
    target = min(max(point.records or 0, seg.rows_before + 1), TRIALS) if point else TRIALS
    while proc.poll() is None and now < WAIT:
        now = time.monotonic() - start
        if now >= next_scan:
            seg.processes |= descendants(proc.pid)
            seg.folders |= _owned_folders(proc.pid)
            next_scan = now + 0.5
        rows = _rows(run_dir)
        if met_at is None and rows >= target:
            met_at = now
        if point is not None and _due(
            point, now, plan_at[0] if plan_at else None, rows, seg.rows_before, met_at
        ):
            due = True
            break
        time.sleep(0.02)
    if proc.poll() is None:
        seg.processes |= descendants(proc.pid)
        seg.folders |= _owned_folders(proc.pid)
        seg.doing = _doing(list(lines), seg.rows_before, run_dir)
        seg.at = time.monotonic() - start
        if point is None or not due:  # ran past WAIT
            seg.doing, seg.at = f"still running after {WAIT}s: killed", None
            proc.kill()
        elif point.signal == "SIGKILL":
            proc.kill()
        else:
            os.killpg(proc.pid, signal.SIGINT)
    try:
        proc.wait(timeout=120)
    except subprocess.TimeoutExpired:
        seg.doing += "; hung after the signal: killed"
        proc.kill()
        proc.wait()
    seg.seconds = time.monotonic() - start
    reader.join(timeout=10)
    seg.rc, seg.output = proc.returncode, "".join(lines)
    if point is None or seg.at is None:
        seg.doing = seg.doing or "ran to its end"
    seg.folders |= _owned_folders(proc.pid)
    seg.left = still_running(seg.processes)
    if seg.rc is not None and seg.rc >= 0:  # it ended by itself: its Ray must end with it
        deadline = time.monotonic() + SETTLE
        while (still_running(seg.processes) or any(f.exists() for f in seg.folders)) and (
            time.monotonic() < deadline
        ):
            time.sleep(0.5)
        seg.lingering = still_running(seg.processes)
    _snapshot(seg, run_dir)
    return seg


def _snapshot(seg: Segment, run_dir: Path) -> None:
    seg.rows_after = _rows(run_dir)
    seg.lock_left = (run_dir / LOCK).exists()
    for name in FILES:
        if (run_dir / name).is_file():
            seg.files[name] = (run_dir / name).read_bytes()
            if why := torn(run_dir / name):
                seg.torn.append(why)
    if (run_dir / "optuna.db").is_file():
        try:
            seg.optuna = optuna_trials(run_dir / "optuna.db")
        except sqlite3.OperationalError as err:
            # killed before Optuna made its tables: nothing to check yet; anything else is a finding
            seg.optuna = None if "no such table" in str(err) else f"unreadable: {err}"


def _kill_leftovers(segments: list[Segment]) -> None:
    """After the assertions: end (by PID) whatever of these runs is still there, so nothing leaks."""
    for seg in segments:
        for pid in still_running(seg.processes):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        for folder in seg.folders:
            for pid in session_processes(folder):
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
            shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def chain(mini_zip: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, list[Segment]]]:
    results = tmp_path_factory.mktemp("kill_points")
    run_dir = results / "init_vs_wd" / RUN
    command = search_command("init_vs_wd", mini_zip, results, "--run", RUN, "--no-dashboard")
    segments: list[Segment] = []
    print(f"kill points of {REPLAY}:")
    try:
        for point in [*kill_points(SEED), None]:
            segments.append(run_segment(command, run_dir, point))
            print(segments[-1].line(), flush=True)
            if point is not None and segments[-1].at is None:
                break  # it ended (or hung) before its kill point: the tests say why
        yield run_dir, segments
    finally:
        _kill_leftovers(segments)


def _table(segments: list[Segment]) -> str:
    return f"{REPLAY}\n" + "\n".join(seg.line() for seg in segments)


def _parse(data: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(data.decode())))


def test_the_kill_points_land_at_varied_moments(chain: tuple[Path, list[Segment]]) -> None:
    _, segments = chain
    table = _table(segments)
    interrupted = segments[:-1]
    assert len(segments) == len(kill_points(SEED)) + 1, f"a driver ended before its kill point:\n{table}"
    assert all(seg.at is not None for seg in interrupted), table  # every signal reached a live driver
    assert sum(seg.point is not None and seg.point.signal == "SIGKILL" for seg in interrupted) >= 5, table
    assert interrupted[0].rows_after == 0, table  # before any trial was recorded
    assert sum(seg.doing.startswith("mid-run") for seg in interrupted) >= 2, table  # trials in flight
    assert interrupted[-1].rows_after >= TRIALS - 1, table  # near the end


def test_after_every_interruption_the_records_are_whole(chain: tuple[Path, list[Segment]]) -> None:
    _, segments = chain
    recorded: list[dict[str, str]] = []
    for number, seg in enumerate(segments, start=1):
        where = f"{REPLAY}; after driver {number}: {seg.line()}"
        assert not seg.torn, where
        if "trials.csv" not in seg.files:
            assert seg.rows_after == 0 and not recorded, where  # no run folder yet
            continue
        trials = _parse(seg.files["trials.csv"])
        ids = [t["trial_id"] for t in trials]
        assert len(ids) == len(set(ids)), f"a trial recorded twice: {sorted(ids)}; {where}"
        assert set(ids) <= set(PLANNED), where
        assert trials[: len(recorded)] == recorded, f"what was recorded changed; {where}"
        recorded = trials
        epochs = [(e["trial_id"], int(e["epoch"])) for e in _parse(seg.files["epochs.csv"])]
        assert len(epochs) == len(set(epochs)), f"an epoch row twice; {where}"
        classes = [(c["trial_id"], c["class_index"]) for c in _parse(seg.files["per_class.csv"])]
        assert len(classes) == len(set(classes)), f"a per-class row twice; {where}"
        for t in trials:  # a trial's detail rows are written before its trials.csv row
            assert sorted(e for i, e in epochs if i == t["trial_id"]) == list(
                range(1, int(t["epochs_run"]) + 1)
            ), f"{t['trial_id']}: epoch rows; {where}"
            assert sum(i == t["trial_id"] for i, _ in classes) == CLASSES, f"{t['trial_id']}; {where}"
        assert not isinstance(seg.optuna, str), f"optuna.db {seg.optuna}; {where}"
        complete = [t.trial for t in seg.optuna or [] if t.state == "COMPLETE"]
        assert len(complete) == len(set(complete)), f"Optuna told a trial COMPLETE twice; {where}"
        assert set(complete) <= set(ids), f"Optuna COMPLETE for unrecorded trials; {where}"


def test_each_resume_continues_from_exactly_what_was_recorded(chain: tuple[Path, list[Segment]]) -> None:
    _, segments = chain
    for before, seg in itertools.pairwise(segments):
        where = f"{REPLAY}; resuming after: {before.line()}\n{seg.output}"
        assert seg.resumed == ("trials.csv" in before.files), where
        if not seg.resumed or "results:" not in seg.output:
            continue  # a fresh start, or killed before it printed its plan
        done = before.rows_after
        assert f"trials: {TRIALS} ({done} already recorded, {TRIALS - done} to run)" in seg.output, where
        if before.lock_left:  # a killed driver's lock is taken over, with a note
            assert f"was left by PID {before.pid}, which is gone; taking the run over" in seg.output, where


def test_the_last_resume_records_every_planned_trial_once_and_optuna_agrees(
    chain: tuple[Path, list[Segment]],
) -> None:
    run_dir, segments = chain
    final, table = segments[-1], _table(segments)
    assert final.point is None and final.rc == 0, f"{table}\n{final.output}"
    assert "incomplete" not in final.output and not final.lock_left, table
    trials = read_csv(run_dir / "trials.csv")
    ids = [t["trial_id"] for t in trials]
    lost, duplicated = sorted(set(PLANNED) - set(ids)), len(ids) - len(set(ids))
    states = optuna_trials(run_dir / "optuna.db")
    complete = sorted(str(t.trial) for t in states if t.state == "COMPLETE")
    others = [t for t in states if t.state != "COMPLETE"]
    print(
        f"{table}\ntrials lost: {len(lost)}, duplicated: {duplicated}; Optuna: {len(complete)} COMPLETE, "
        f"{sum(t.state == 'FAIL' for t in others)} FAIL, {len(states)} in all"
    )
    assert sorted(ids) == PLANNED, f"lost {lost}, {duplicated} duplicated; {table}"
    assert all(t["status"] == "completed" for t in trials), table
    epochs = read_csv(run_dir / "epochs.csv")
    assert sorted((e["trial_id"], int(e["epoch"])) for e in epochs) == [
        (i, e) for i in PLANNED for e in range(1, EPOCHS + 1)
    ], table
    per_class = read_csv(run_dir / "per_class.csv")
    assert sorted((c["trial_id"], int(c["class_index"])) for c in per_class) == [
        (i, c) for i in PLANNED for c in range(CLASSES)
    ], table
    assert complete == PLANNED, f"one COMPLETE Optuna trial per recorded trial; {table}"
    assert all(t.step == EPOCHS for t in states if t.state == "COMPLETE"), table
    assert {t.state for t in others} <= {"FAIL"}, f"{others}; {table}"
    # each Optuna trial an interruption left open was closed on resume: FAIL when its trial had not been
    # recorded (it ran again as a new Optuna trial), its recorded outcome when it had; nothing else failed
    unrecorded = {
        t.number
        for seg in segments
        for t in seg.open_trials()
        if t.trial not in {row["trial_id"] for row in _parse(seg.files.get("trials.csv", b""))}
    }
    assert {t.number for t in others} == unrecorded, f"{others}; {table}"
    seeds: dict[tuple[str, str], set[str]] = {}
    for t in trials:  # the paired design survived: every arm ran with the same seeds
        seeds.setdefault((t["init.scheme"], t["optim.weight_decay"]), set()).add(t["seed"])
    assert len(seeds) == 6 and all(s == {"0", "1"} for s in seeds.values()), table


def test_ctrl_c_ends_the_search_cleanly_and_resume_finishes_it(chain: tuple[Path, list[Segment]]) -> None:
    _, segments = chain
    (index,) = [i for i, s in enumerate(segments) if s.point is not None and s.point.signal == "SIGINT"]
    seg = segments[index]
    where = f"{REPLAY}; {seg.line()}\n{seg.output}"
    assert seg.at is not None and seg.doing.startswith("mid-run"), where
    assert seg.rc is not None and seg.rc > 0, where  # a non-zero exit of its own, not death by the signal
    assert "Traceback" not in seg.output and "Tuner.restore" not in seg.output, where  # tinyab's way only
    left = TRIALS - seg.rows_after
    assert f"incomplete: {left} trial(s) not run; continue with --resume" in seg.output, where
    assert not seg.torn and not seg.lock_left, where
    trials = _parse(seg.files["trials.csv"])
    assert all(t["status"] == "completed" for t in trials), where  # trials it stopped are not "failed"
    assert seg.lingering == {}, f"Ray processes {SETTLE}s after Ctrl-C: {seg.lingering}; {where}"
    assert not any(f.exists() for f in seg.folders), where
    assert not isinstance(seg.optuna, str), where
    following = segments[index + 1]
    assert following.resumed and f"({seg.rows_after} already recorded" in following.output, where
    assert segments[-1].rc == 0, _table(segments)  # and the last --resume finished the run


def test_no_ray_process_of_these_runs_is_left(chain: tuple[Path, list[Segment]]) -> None:
    _, segments = chain
    table = _table(segments)
    assert segments[-1].lingering == {}, f"{segments[-1].lingering}; {table}"  # it ended its own Ray
    assert any(seg.left for seg in segments[:-1]), f"no kill left Ray processes to reap; {table}"
    deadline = time.monotonic() + SETTLE
    while time.monotonic() < deadline:
        left = {pid: cmd for seg in segments for pid, cmd in still_running(seg.processes).items()}
        left |= {pid: str(f) for seg in segments for f in seg.folders for pid in session_processes(f)}
        folders = [f for seg in segments for f in seg.folders if f.exists()]
        if not left and not folders:
            break
        time.sleep(0.5)
    assert not left and not folders, f"left {left}, folders {folders}; {table}"


def test_ctrl_c_before_tune_starts_says_how_to_resume(mini_zip: Path, tmp_path: Path) -> None:
    """Ctrl-C right as the plan is printed, before Tune's own handler is in place: one line on how to go
    on, no traceback, Ray ended with the driver."""
    command = search_command("init_vs_wd", mini_zip, tmp_path, "--run", "early", "--no-dashboard")
    seg = run_segment(command, tmp_path / "init_vs_wd" / "early", KillPoint("SIGINT", after_plan=0.0))
    where = f"{seg.line()}\n{seg.output}"
    assert seg.at is not None and seg.rc is not None and seg.rc > 0, where
    assert "continue with --resume" in seg.output and "Traceback" not in seg.output, where
    assert not seg.torn and not seg.lock_left, where
    assert seg.lingering == {}, f"Ray processes {SETTLE}s after Ctrl-C: {seg.lingering}; {where}"
