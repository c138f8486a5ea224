"""load_arrays: deterministic subsets with pixels checked against Pillow, and the uint8 cache."""

from __future__ import annotations

import io
import os
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image
from test_data_helpers import ROOT, build_small_dataset, read_annotations, zip_folder

import tinyab.data.arrays as arrays
from tinyab.data import cache, load_arrays
from tinyab.errors import DataError


def _pillow(zf: zipfile.ZipFile, member: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(zf.read(member))).convert("RGB"))


def test_subset_is_deterministic_and_pixels_match_pillow(mini_zip, tmp_path):
    data = load_arrays(
        mini_zip, classes=3, train_per_class=12, val_per_class=2, cache_dir=tmp_path, progress=False
    )
    with zipfile.ZipFile(mini_zip) as zf:
        wnids = zf.read(f"{ROOT}/wnids.txt").decode().split()[:3]
        words = dict(line.split("\t") for line in zf.read(f"{ROOT}/words.txt").decode().splitlines())
        counts, val = dict.fromkeys(wnids, 0), []
        for file, wnid in sorted(read_annotations(zf), key=lambda fw: int(fw[0][4:-5])):
            if wnid in counts and counts[wnid] < 2:
                counts[wnid] += 1
                val.append((file, wnid))
        assert data.wnids == wnids
        assert data.class_names == [words[w].split(",")[0] for w in wnids]
        assert data.train_x.shape == (36, 64, 64, 3) and data.train_x.dtype == torch.uint8
        assert data.train_y.tolist() == [0] * 12 + [1] * 12 + [2] * 12
        assert data.val_x.shape == (6, 64, 64, 3)
        assert data.val_y.tolist() == [wnids.index(w) for _, w in val]
        for i in (0, 9, 10, 11):  # numeric order: _10 after _9
            expected = _pillow(zf, f"{ROOT}/train/{wnids[0]}/images/{wnids[0]}_{i}.JPEG")
            assert np.array_equal(data.train_x[i].numpy(), expected)
        for j, (file, _) in enumerate(val):
            assert np.array_equal(data.val_x[j].numpy(), _pillow(zf, f"{ROOT}/val/images/{file}"))


def test_grayscale_jpeg_becomes_rgb_with_equal_channels(mini_zip, tmp_path):
    data = load_arrays(
        mini_zip, classes=2, train_per_class=10, val_per_class=1, cache_dir=tmp_path, progress=False
    )
    gray = data.train_x[10 + 9]  # n04067472_9.JPEG, a single-channel JPEG in the original data
    with zipfile.ZipFile(mini_zip) as zf:
        assert Image.open(io.BytesIO(zf.read(f"{ROOT}/train/n04067472/images/n04067472_9.JPEG"))).mode == "L"
    assert torch.equal(gray[..., 0], gray[..., 1]) and torch.equal(gray[..., 0], gray[..., 2])


def test_second_call_reads_the_cache_without_opening_or_decoding(mini_zip, tmp_path, monkeypatch):
    first = load_arrays(
        mini_zip, classes=4, train_per_class=5, val_per_class=3, cache_dir=tmp_path, progress=False
    )
    assert len(list(tmp_path.glob("*.pt"))) == 1

    def forbidden(*args, **kwargs):
        raise AssertionError("the cache was not used")

    monkeypatch.setattr(arrays, "open_dataset", forbidden)
    monkeypatch.setattr(arrays, "decode_images", forbidden)
    second = load_arrays(
        mini_zip, classes=4, train_per_class=5, val_per_class=3, cache_dir=tmp_path, progress=False
    )
    for name in ("train_x", "train_y", "val_x", "val_y"):
        assert torch.equal(getattr(first, name), getattr(second, name))
    assert (second.wnids, second.class_names) == (first.wnids, first.class_names)
    with pytest.raises(AssertionError, match="cache was not used"):  # another subset is another entry
        load_arrays(
            mini_zip, classes=4, train_per_class=6, val_per_class=3, cache_dir=tmp_path, progress=False
        )


def test_a_changed_source_is_decoded_again(mini_zip, tmp_path, monkeypatch):
    archive = zip_folder(build_small_dataset(mini_zip, tmp_path / "src"), tmp_path / "small.zip")
    cache = tmp_path / "cache"
    load_arrays(archive, classes=2, cache_dir=cache, progress=False)
    calls = []
    monkeypatch.setattr(arrays, "decode_images", lambda *a, **k: calls.append(a) or torch.zeros(0, 64, 64, 3))
    load_arrays(archive, classes=2, cache_dir=cache, progress=False)
    assert calls == []
    os.utime(archive, ns=(archive.stat().st_atime_ns, archive.stat().st_mtime_ns + 10**9))
    load_arrays(archive, classes=2, cache_dir=cache, progress=False)
    assert len(calls) == 2  # train and val decoded again


def test_default_cache_dir_is_under_tinyab_home(mini_zip, tmp_path, monkeypatch):
    monkeypatch.setenv("TINYAB_HOME", str(tmp_path))
    load_arrays(mini_zip, classes=2, train_per_class=1, val_per_class=1, progress=False)
    assert len(list((tmp_path / "cache").glob("tinyimagenet-*.pt"))) == 1


def test_failed_decode_leaves_nothing_cached(mini_zip, tmp_path):
    folder = build_small_dataset(mini_zip, tmp_path / "src")
    next((folder / "train").rglob("*_5.JPEG")).write_bytes(b"garbage")
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match=r"_5\.JPEG: corrupt JPEG"):
        load_arrays(folder, classes=3, cache_dir=cache, progress=False)
    assert not cache.exists() or list(cache.iterdir()) == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"classes": 201}, "asked for 201 classes, the dataset has 200"),
        ({"classes": 2, "train_per_class": 51}, "train_per_class=51, but class n02124075 has only 50 images"),
        ({"classes": 2, "val_per_class": 60}, "val_per_class=60, but class n02124075 has only 50 images"),
    ],
)
def test_impossible_subsets_are_refused(mini_zip, tmp_path, kwargs, message):
    with pytest.raises(DataError, match=message):
        load_arrays(mini_zip, cache_dir=tmp_path, progress=False, **kwargs)


def test_an_unreadable_cache_file_is_replaced(mini_zip, tmp_path):
    subset = {"classes": 2, "train_per_class": 2, "val_per_class": 1}
    target = cache.cache_file(tmp_path, cache.cache_key(mini_zip, subset))
    target.write_bytes(b"not a torch file")
    data = load_arrays(mini_zip, cache_dir=tmp_path, progress=False, **subset)
    assert data.train_x.shape == (4, 64, 64, 3)
    assert torch.load(target, weights_only=True)["train_y"].tolist() == [0, 0, 1, 1]
