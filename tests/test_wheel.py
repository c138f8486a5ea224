"""A plain (non-editable) install finds the shipped studies: build the wheel (`python -m build`),
install it into a fresh virtual environment, and run `tinyab spaces` and a dry run from a folder
outside the checkout."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def test_the_wheel_ships_the_studies_and_runs_a_dry_run(tmp_path: Path, mini_zip: Path) -> None:
    wheels = tmp_path / "dist"
    build = [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(wheels), str(REPO)]
    subprocess.run(build, check=True, capture_output=True, timeout=300)
    (wheel,) = wheels.glob("tinyab-*.whl")
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    # the dependencies (torch, ray, ...) come from this environment's site-packages, not a download;
    # tinyab only from the wheel (a .pth'd folder's own .pth files, such as the editable hook, are not run)
    (Path(site) / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q", str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    tinyab = env_dir / "bin" / "tinyab"
    where = subprocess.run([str(python), "-c", "import tinyab; print(tinyab.__file__)"], cwd=outside,
                           capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert where.startswith(str(env_dir)), where  # the installed copy, not the checkout
    spaces = subprocess.run([str(tinyab), "spaces"], cwd=outside, capture_output=True, text=True, timeout=120)
    assert spaces.returncode == 0, spaces.stderr
    assert [line.split()[0] for line in spaces.stdout.splitlines()] == [
        "clr_bounds", "dropout", "init_vs_wd", "resolution_schedule", "seed_net2",
    ]  # fmt: skip
    ablations = subprocess.run([str(tinyab), "ablations"], cwd=outside, capture_output=True, text=True)
    assert ablations.stdout.startswith("seed_study")
    dry = subprocess.run(
        [str(tinyab), "search", "init_vs_wd", "--dry-run", "--profile", "smoke", "--data", str(mini_zip)],
        cwd=outside,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert dry.returncode == 0, dry.stderr
    assert "trials: 18 (0 already recorded, 18 to run)" in dry.stdout
    assert "images to process: 180,000" in dry.stdout
    assert not (outside / "results").exists()  # a dry run writes nothing
