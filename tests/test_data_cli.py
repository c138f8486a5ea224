"""``tinyab data info`` and ``tinyab data download`` through the CLI, in-process and as a real process,
and the first run of the main job on a machine without network."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from test_data_helpers import build_small_dataset, zip_folder

from helpers.network import closed_port, go_offline
from tinyab.cli import main
from tinyab.data import OFFICIAL_URL

WAYS = (
    "ways forward: --data PATH (a Tiny ImageNet zip or folder you have), set $TINYAB_DATA=PATH, "
    "or 'tinyab data download --url URL' (a mirror)"
)

TINYAB = Path(sys.executable).parent / "tinyab"


def test_info_prints_the_counts_of_a_real_process(mini_zip):
    proc = subprocess.run(
        [TINYAB, "data", "info", str(mini_zip)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    fields = dict(re.split(r"\s{2,}", line, maxsplit=1) for line in proc.stdout.splitlines())
    assert fields["dataset"] == str(mini_zip)
    assert (fields["classes"], fields["train images"], fields["val images"]) == ("200", "10000", "10000")
    assert fields["grayscale images"].startswith("362 ")
    assert proc.stderr == ""  # no progress bar when stderr is not a terminal


def test_info_of_a_corrupt_copy_fails_with_one_line_in_a_real_process(mini_zip, tmp_path):
    folder = build_small_dataset(mini_zip, tmp_path)
    bad = next((folder / "val" / "images").iterdir())
    bad.write_bytes(bad.read_bytes()[:20] + b"\x00" * 50)
    proc = subprocess.run([TINYAB, "data", "info", str(folder)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.startswith(f"tinyab: error: {bad}: corrupt JPEG (") and proc.stderr.count("\n") == 1
    assert "Traceback" not in proc.stderr and ".cpp" not in proc.stderr


def test_info_in_process_on_a_zip_and_a_missing_path(mini_zip, tmp_path, capsys):
    archive = zip_folder(build_small_dataset(mini_zip, tmp_path), tmp_path / "small.zip")
    assert main(["data", "info", str(archive)]) == 0
    out = capsys.readouterr().out
    assert "classes           3" in out and "train images      36" in out and "val images        6" in out
    assert main(["data", "info", str(tmp_path / "missing.zip")]) == 2
    err = capsys.readouterr().err
    assert err == f"tinyab: error: {tmp_path / 'missing.zip'}: dataset not found\n"


def test_info_without_path_uses_tinyab_data(mini_zip, tmp_path, monkeypatch, capsys):
    folder = build_small_dataset(mini_zip, tmp_path)
    monkeypatch.setenv("TINYAB_DATA", str(folder))
    assert main(["data", "info"]) == 0
    assert f"dataset           {folder}" in capsys.readouterr().out


def test_download_with_an_unreachable_url_says_what_then_why_and_exits_2(tmp_path, capsys):
    url = f"http://127.0.0.1:{closed_port()}/tiny-imagenet-200.zip"
    assert main(["data", "download", "--dir", str(tmp_path / "d"), "--url", url]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "tinyab: downloading a Tiny ImageNet archive (~237 MB zip, ~0.5 GB extracted) "
        f"from {url} to {tmp_path / 'd' / 'tiny-imagenet-200'}",
        f"tinyab: error: download of {url} failed: Connection refused; {WAYS}",
    ]
    assert list((tmp_path / "d").iterdir()) == []


def test_download_of_a_missing_file_url_in_a_real_process(tmp_path):
    url = (tmp_path / "no-such.zip").as_uri()
    proc = subprocess.run(
        [TINYAB, "data", "download", "--dir", str(tmp_path / "d"), "--url", url],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (proc.returncode, proc.stdout) == (2, "")
    assert proc.stderr.splitlines() == [
        "tinyab: downloading a Tiny ImageNet archive (~237 MB zip, ~0.5 GB extracted) "
        f"from {url} to {tmp_path / 'd' / 'tiny-imagenet-200'}",
        f"tinyab: error: download of {url} failed: No such file or directory; {WAYS}",
    ]
    assert list((tmp_path / "d").iterdir()) == []


def test_first_run_of_the_main_job_offline(tmp_path, monkeypatch, capsys):
    """``tinyab search init_vs_wd`` with no dataset and no network: what it tried, why it failed, exit 2."""
    monkeypatch.setenv("TINYAB_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("TINYAB_DATA", raising=False)
    go_offline(monkeypatch)
    code = main(["search", "init_vs_wd", "--profile", "smoke", "--results", str(tmp_path / "results")])
    out, err = capsys.readouterr()
    assert (code, out) == (2, "")
    assert err.splitlines() == [
        "tinyab: no dataset given (--data, $TINYAB_DATA) or downloaded yet; downloading the official "
        f"Tiny ImageNet archive (~237 MB zip, ~0.5 GB extracted) from {OFFICIAL_URL} "
        f"to {tmp_path / 'home' / 'tiny-imagenet-200'}",
        f"tinyab: error: download of {OFFICIAL_URL} failed: cannot resolve host cs231n.stanford.edu "
        f"(no network or no DNS?); {WAYS}",
    ]
    assert [p for p in tmp_path.rglob("*") if not p.is_dir()] == []  # no archive, no partial file


def test_download_into_a_folder_that_has_the_dataset_reports_it(mini_zip, tmp_path, capsys):
    folder = build_small_dataset(mini_zip, tmp_path)
    assert main(["data", "download", "--dir", str(tmp_path), "--url", "http://127.0.0.1:9/unused.zip"]) == 0
    assert capsys.readouterr().out == f"dataset ready at {folder}\n"
