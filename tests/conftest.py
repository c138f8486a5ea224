"""Shared fixtures: the real Tiny ImageNet mini archive (never a silent skip when it is missing)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers.raycluster import RayCluster, ray_cluster

REPO_ROOT = Path(__file__).resolve().parent.parent


def mini_zip_path() -> Path:
    """$TINYAB_TEST_DATA, else ../shared/data/tiny-imagenet-200-mini.zip beside the repo."""
    env = os.environ.get("TINYAB_TEST_DATA")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "data" / "tiny-imagenet-200-mini.zip"


def pytest_configure(config: pytest.Config) -> None:
    """Keep the uint8 cache and downloads of the test session out of the user's ~/.cache."""
    if "TINYAB_HOME" not in os.environ:
        os.environ["TINYAB_HOME"] = tempfile.mkdtemp(prefix="tinyab-test-home-")


@pytest.fixture(scope="session")
def mini_zip() -> Path:
    path = mini_zip_path()
    if not path.is_file():
        pytest.fail(f"test data not found: {path} (set TINYAB_TEST_DATA)")
    return path


@pytest.fixture(scope="session")
def cluster() -> Iterator[RayCluster]:
    """A real 2-node Ray cluster on this machine (two ``ray start`` nodes, the head with its dashboard),
    started once for the session by the tests that need it."""
    with ray_cluster(workers=1) as started:
        yield started
