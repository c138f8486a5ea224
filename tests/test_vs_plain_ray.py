"""The plain Ray Tune script of benchmarks/vs_plain_ray.py runs tinyab's workload: same images, same net."""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path

import pytest

from tinyab.config import load_recipe
from tinyab.data import open_dataset
from tinyab.data.subset import select_subset
from tinyab.models import build_model, count_parameters

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.fixture(scope="module")
def plain() -> dict:
    """The plain script's functions, without running its Tune grid."""
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import vs_plain_ray
    finally:
        sys.path.remove(str(BENCHMARKS))
    namespace: dict = {"__name__": "plain_tune"}
    exec(compile(vs_plain_ray.PLAIN_SCRIPT, "plain_tune.py", "exec"), namespace)
    return namespace


def test_plain_script_reads_the_same_ten_class_subset(plain, mini_zip):
    with zipfile.ZipFile(mini_zip) as z:
        train, val = plain["files"](z, 10)
    with open_dataset(mini_zip) as source:
        train_names, train_labels, val_names, val_labels = select_subset(source, 10, None, None)
    prefix = "tiny-imagenet-200/"
    assert sorted((n.removeprefix(prefix), c) for n, c in train) == sorted(
        zip(train_names, train_labels, strict=True)
    )
    assert sorted((n.removeprefix(prefix), c) for n, c in val) == sorted(
        zip(val_names, val_labels, strict=True)
    )
    assert len(train) == 500 and len(val) == 500


def test_plain_script_trains_the_smoke_recipes_network(plain):
    recipe = load_recipe("smoke")
    ours = build_model(recipe.model, 10)
    theirs = plain["resnet"](10)
    assert count_parameters(theirs) == count_parameters(ours)
    shapes = sorted(tuple(p.shape) for p in theirs.parameters())
    assert shapes == sorted(tuple(p.shape) for p in ours.parameters())
