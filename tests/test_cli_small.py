"""Small promises of the command line: files get the user's umask, a closed pipe is a quiet exit, and
every command's --help ends with an example that really parses."""

from __future__ import annotations

import argparse
import os
import shlex
import stat
import subprocess
import sys
from pathlib import Path

import pytest

import tinyab.io
from helpers.records import write_factorial
from tinyab.cli import EXIT_BROKEN_PIPE, build_parser
from tinyab.io import atomic_write_text, current_umask

TINYAB = Path(sys.executable).parent / "tinyab"


@pytest.fixture
def umask():
    """Set the process umask for one test and restore it afterwards."""
    previous = os.umask(0o022)
    yield lambda mask: os.umask(mask)
    os.umask(previous)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_atomic_write_follows_the_umask(tmp_path, umask):
    assert _mode(atomic_write_text(tmp_path / "a.csv", "x\n")) == 0o644
    umask(0o077)
    assert _mode(atomic_write_text(tmp_path / "a.csv", "y\n")) == 0o600  # replacing takes the new mode
    umask(0o002)
    assert _mode(atomic_write_text(tmp_path / "b.csv", "z\n")) == 0o664
    assert (tmp_path / "a.csv").read_text() == "y\n" and sorted(p.name for p in tmp_path.iterdir()) == [
        "a.csv",
        "b.csv",
    ]


def test_umask_without_proc_is_read_and_left_as_it_was(monkeypatch, umask):
    """Where /proc is missing (macOS) the umask is read by setting it; it must come back unchanged."""
    umask(0o027)

    def no_proc(*args, **kwargs):
        raise FileNotFoundError("/proc/self/status")

    monkeypatch.setattr(tinyab.io, "open", no_proc, raising=False)
    assert current_umask() == 0o027
    monkeypatch.undo()
    assert current_umask() == 0o027


def _into_closed_pipe(*args: str) -> tuple[int, bytes]:
    """Run tinyab with a stdout whose reader is gone before anything is written (like ``| head``),
    block-buffered as Python's stdout into a pipe is by default."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    proc = subprocess.Popen(
        [TINYAB, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, umask=0o022, env=env
    )
    proc.stdout.close()
    _, err = proc.communicate(timeout=300)
    return proc.returncode, err


@pytest.mark.parametrize("big", [True, False], ids=["report-breaks-while-printing", "recipes-at-exit"])
def test_output_into_a_closed_pipe_exits_quietly(tmp_path, big):
    """A long report breaks the pipe while printing; the short recipe list only when flushed at exit."""
    if big:
        write_factorial(tmp_path / "run")
        code, err = _into_closed_pipe("report", str(tmp_path / "run"), "--no-figures")
        assert _mode(tmp_path / "run" / "report" / "report.md") == 0o644  # written before the pipe broke
    else:
        code, err = _into_closed_pipe("recipes")
    assert code == EXIT_BROKEN_PIPE == 141
    assert b"Traceback" not in err and b"BrokenPipe" not in err and b"Exception ignored" not in err


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """Every command's parser by its full name ('data download', 'train', ...)."""
    found = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found[name] = sub
                found.update({f"{name} {k}": v for k, v in _subparsers(sub).items()})
    return found


@pytest.mark.parametrize(
    "command",
    [
        *["data", "data info", "data download", "train", "recipes", "lr-find", "report"],
        *["search", "spaces", "ablate", "ablations", "dashboard"],
    ],
)
def test_help_ends_with_an_example_that_parses(command):
    parser = build_parser()
    sub = _subparsers(parser)[command]
    help_text = sub.format_help()
    head, _, example = help_text.rstrip("\n").rpartition("\nexample:\n  ")
    assert head and "\n" not in example, help_text
    words = shlex.split(example)
    assert words[0] == "tinyab" and " ".join(words[1:]).startswith(command)
    args = parser.parse_args(words[1:])
    assert callable(args.func)
