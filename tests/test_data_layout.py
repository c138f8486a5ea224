"""The layout reader and dataset_info on real Tiny ImageNet files, and its one-line errors."""

from __future__ import annotations

import io
import zipfile

import pytest
from PIL import Image
from test_data_helpers import ROOT, build_small_dataset, read_annotations, zip_folder

from tinyab.data import dataset_info, open_dataset
from tinyab.errors import DataError


def test_mini_zip_layout_matches_its_text_files(mini_zip):
    with zipfile.ZipFile(mini_zip) as zf:
        wnids = zf.read(f"{ROOT}/wnids.txt").decode().split()
        annotations = read_annotations(zf)
    with open_dataset(mini_zip) as source:
        assert source.wnids == wnids
        assert source.class_names[wnids.index("n01443537")] == "goldfish"
        assert [len(images) for images in source.train] == [50] * 200
        # numeric order: _9 before _10
        assert source.train[0][9:11] == [f"train/{wnids[0]}/images/{wnids[0]}_{i}.JPEG" for i in (9, 10)]
        assert len(source.val) == 10_000
        assert source.val[:3] == [(f"val/images/{f}", wnids.index(w)) for f, w in annotations[:3]]


def test_folder_and_zip_of_the_same_data_agree(mini_zip, tmp_path):
    folder = build_small_dataset(mini_zip, tmp_path / "f")
    archive = zip_folder(folder, tmp_path / "small.zip")
    with open_dataset(folder) as a, open_dataset(archive) as b, open_dataset(folder.parent) as c:
        assert (a.wnids, a.train, a.val) == (b.wnids, b.train, b.val) == (c.wnids, c.train, c.val)
        assert a.read(a.val[0][0]) == b.read(b.val[0][0])


def test_dataset_info_counts_the_mini_archive(mini_zip):
    info = dataset_info(mini_zip, progress=False)
    assert (info.classes, info.train_images, info.val_images, info.grayscale_images) == (
        200,
        10000,
        10000,
        362,
    )


def test_dataset_info_counts_grayscale_against_pillow(mini_zip, tmp_path):
    folder = build_small_dataset(mini_zip, tmp_path)
    expected = sum(Image.open(p).mode == "L" for p in folder.rglob("*.JPEG"))
    assert expected >= 1
    assert dataset_info(folder, progress=False).grayscale_images == expected


def test_missing_file_is_named(mini_zip, tmp_path):
    folder = build_small_dataset(mini_zip, tmp_path)
    (folder / "words.txt").unlink()
    with pytest.raises(DataError, match=r"words\.txt: missing file"):
        open_dataset(folder)


def test_annotation_with_unknown_class_names_file_line_and_wnid(mini_zip, tmp_path):
    folder = build_small_dataset(mini_zip, tmp_path)
    rel = "val/val_annotations.txt"
    lines = (folder / rel).read_text().splitlines()
    lines[2] = lines[2].replace(lines[2].split("\t")[1], "n99999999")
    (folder / rel).write_text("\n".join(lines))
    with pytest.raises(DataError, match=r"val_annotations\.txt line 3: unknown class n99999999"):
        open_dataset(folder)


def test_val_image_listed_but_missing_is_named(mini_zip, tmp_path):
    folder = build_small_dataset(mini_zip, tmp_path)
    first = (folder / "val/val_annotations.txt").read_text().split("\t")[0]
    (folder / "val/images" / first).unlink()
    with pytest.raises(DataError, match=rf"{first}: missing file"):
        open_dataset(folder)


@pytest.mark.parametrize("content", [b"\xff\xd8 this is not a JPEG", b""])
def test_corrupt_jpeg_is_named(mini_zip, tmp_path, content):
    folder = build_small_dataset(mini_zip, tmp_path)
    bad = next((folder / "train").rglob("*_3.JPEG"))
    bad.write_bytes(content)
    with pytest.raises(DataError, match=rf"{bad.name}: corrupt JPEG") as err:
        dataset_info(folder, progress=False)
    assert "\n" not in str(err.value)


def test_image_of_wrong_size_is_named_with_its_size(mini_zip, tmp_path):
    folder = build_small_dataset(mini_zip, tmp_path)
    buffer = io.BytesIO()
    Image.new("RGB", (48, 40), (10, 20, 30)).save(buffer, "JPEG")
    bad = folder / "val/images" / (folder / "val/val_annotations.txt").read_text().split("\t")[0]
    bad.write_bytes(buffer.getvalue())
    with pytest.raises(DataError, match=rf"{bad.name}: image is 48×40, expected 64×64"):
        dataset_info(folder, progress=False)


@pytest.mark.parametrize("kind", ["text file", "zip without layout", "empty folder"])
def test_not_a_tiny_imagenet_layout(tmp_path, kind):
    if kind == "text file":
        path = tmp_path / "notes.txt"
        path.write_text("hello")
    elif kind == "zip without layout":
        path = tmp_path / "other.zip"
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("photos/a.txt", "x")
    else:
        path = tmp_path
    with pytest.raises(DataError, match=r"not a (readable zip file|Tiny ImageNet)"):
        open_dataset(path)


def test_missing_path():
    with pytest.raises(DataError, match="not found"):
        open_dataset("/nonexistent/tiny.zip")
