"""Read Tiny ImageNet in its official layout, from the ``.zip`` or from an extracted folder.

The layout (top folder ``tiny-imagenet-200/``): ``wnids.txt`` (one class id per line; the line order is
the label index), ``words.txt`` (``wnid<TAB>names``), ``train/<wnid>/images/<wnid>_<n>.JPEG`` and
``val/images/val_<n>.JPEG`` labelled by ``val/val_annotations.txt`` (``file<TAB>wnid<TAB>box``).
A class's name is the first comma-separated name in ``words.txt`` ("goldfish, Carassius auratus" ->
"goldfish"): short enough for tables and figures, and still unique across the 200 classes.
Only the lists are read here; images are decoded by :mod:`tinyab.data.decode`.
"""

from __future__ import annotations

import os
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from tinyab.errors import DataError

ROOT_NAME = "tiny-imagenet-200"
IMAGE_SUFFIXES = (".jpeg", ".jpg")
_INDEX = re.compile(r"_(\d+)\.[A-Za-z]+$")


class _Files(Protocol):
    """Read access to the files below the dataset's top folder, by '/'-separated relative name."""

    def label(self, rel: str) -> str: ...
    def listdir(self, rel: str) -> list[str] | None: ...
    def read(self, rel: str) -> bytes: ...
    def close(self) -> None: ...


class _ZipFiles:
    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._zip = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError) as err:
            raise DataError(f"{path}: not a readable zip file ({err})") from None
        names = [n for n in self._zip.namelist() if not n.endswith("/")]
        roots = sorted((n for n in names if n in ("wnids.txt", f"{n.split('/')[0]}/wnids.txt")), key=len)
        if not roots:
            self._zip.close()
            raise DataError(f"{path}: not a Tiny ImageNet archive (no {ROOT_NAME}/wnids.txt inside)")
        self.prefix = roots[0][: -len("wnids.txt")]
        self._folders: dict[str, list[str]] = {}
        for name in names:
            if name.startswith(self.prefix):
                folder, _, base = name[len(self.prefix) :].rpartition("/")
                self._folders.setdefault(folder, []).append(base)

    def label(self, rel: str) -> str:
        return f"{self.path}:{self.prefix}{rel}"

    def listdir(self, rel: str) -> list[str] | None:
        return self._folders.get(rel)

    def read(self, rel: str) -> bytes:
        try:
            return self._zip.read(self.prefix + rel)
        except KeyError:
            raise DataError(f"{self.label(rel)}: missing file") from None
        except (zipfile.BadZipFile, OSError, EOFError) as err:
            raise DataError(f"{self.label(rel)}: unreadable zip entry ({err})") from None

    def close(self) -> None:
        self._zip.close()


class _DirFiles:
    def __init__(self, path: Path) -> None:
        for root in (path, path / ROOT_NAME):
            if (root / "wnids.txt").is_file():
                self.root = root
                return
        raise DataError(f"{path}: not a Tiny ImageNet folder (no wnids.txt in it or in {ROOT_NAME}/)")

    def label(self, rel: str) -> str:
        return str(self.root / rel)

    def listdir(self, rel: str) -> list[str] | None:
        try:
            return [e.name for e in os.scandir(self.root / rel) if e.is_file()]
        except (FileNotFoundError, NotADirectoryError):
            return None

    def read(self, rel: str) -> bytes:
        try:
            return (self.root / rel).read_bytes()
        except FileNotFoundError:
            raise DataError(f"{self.label(rel)}: missing file") from None
        except OSError as err:
            raise DataError(f"{self.label(rel)}: unreadable ({err.strerror})") from None

    def close(self) -> None:
        pass


def _image_order(name: str) -> tuple[int, str]:
    """Numeric order of ``<wnid>_<n>.JPEG`` / ``val_<n>.JPEG`` (so _10 follows _9, not _1)."""
    match = _INDEX.search(name)
    return (int(match.group(1)) if match else -1, name)


def _is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_SUFFIXES)


@dataclass
class TinyImageNetSource:
    """The class list and image lists of one dataset; ``read`` returns an image's JPEG bytes.

    ``train[c]`` holds class ``c``'s train images by numeric index; ``val`` holds ``(name, class)`` by
    numeric index. Names are relative to the top folder, e.g. ``val/images/val_0.JPEG``.
    """

    path: Path
    wnids: list[str]
    class_names: list[str]
    train: list[list[str]]
    val: list[tuple[str, int]]
    _files: _Files = field(repr=False)

    def read(self, name: str) -> bytes:
        return self._files.read(name)

    def label(self, name: str) -> str:
        """How error messages name a file of this dataset."""
        return self._files.label(name)

    def close(self) -> None:
        self._files.close()

    def __enter__(self) -> TinyImageNetSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _text(files: _Files, rel: str) -> list[str]:
    data = files.read(rel)
    try:
        return data.decode("utf-8").splitlines()
    except UnicodeDecodeError:
        raise DataError(f"{files.label(rel)}: not a UTF-8 text file") from None


def _read_wnids(files: _Files) -> list[str]:
    wnids = [line.strip() for line in _text(files, "wnids.txt") if line.strip()]
    if not wnids:
        raise DataError(f"{files.label('wnids.txt')}: lists no classes")
    seen: set[str] = set()
    for wnid in wnids:
        if wnid in seen:
            raise DataError(f"{files.label('wnids.txt')}: class {wnid} is listed twice")
        seen.add(wnid)
    return wnids


def _read_names(files: _Files, wnids: list[str]) -> list[str]:
    words = {}
    for line in _text(files, "words.txt"):
        wnid, _, names = line.partition("\t")
        words[wnid.strip()] = names.split(",")[0].strip()
    for wnid in wnids:
        if not words.get(wnid):
            raise DataError(f"{files.label('words.txt')}: no name for class {wnid}")
    return [words[w] for w in wnids]


def _read_train(files: _Files, wnids: list[str]) -> list[list[str]]:
    train = []
    for wnid in wnids:
        folder = f"train/{wnid}/images"
        listing = files.listdir(folder)
        if listing is None:
            raise DataError(f"{files.label(folder)}: missing folder for class {wnid}")
        images = sorted((n for n in listing if _is_image(n)), key=_image_order)
        if not images:
            raise DataError(f"{files.label(folder)}: no train images for class {wnid}")
        train.append([f"{folder}/{n}" for n in images])
    return train


def _read_val(files: _Files, wnids: list[str]) -> list[tuple[str, int]]:
    rel = "val/val_annotations.txt"
    index = {w: i for i, w in enumerate(wnids)}
    labels: dict[str, int] = {}
    for number, line in enumerate(_text(files, rel), start=1):
        if not line.strip():
            continue
        parts = line.split("\t") if "\t" in line else line.split()
        if len(parts) < 2:
            got = line.strip()
            raise DataError(f"{files.label(rel)} line {number}: expected 'file<TAB>wnid', got {got!r}")
        name, wnid = parts[0].strip(), parts[1].strip()
        if wnid not in index:
            raise DataError(f"{files.label(rel)} line {number}: unknown class {wnid} (not in wnids.txt)")
        labels[name] = index[wnid]
    listing = files.listdir("val/images")
    if listing is None:
        raise DataError(f"{files.label('val/images')}: missing folder")
    present = {n for n in listing if _is_image(n)}
    for name in sorted(labels, key=_image_order):
        if name not in present:
            raise DataError(f"{files.label('val/images/' + name)}: missing file (listed in {rel})")
    for name in sorted(present, key=_image_order):
        if name not in labels:
            raise DataError(f"{files.label('val/images/' + name)}: not annotated in {rel}")
    return [(f"val/images/{n}", labels[n]) for n in sorted(labels, key=_image_order)]


def open_dataset(path: str | Path) -> TinyImageNetSource:
    """The dataset at ``path`` (a ``.zip`` or a folder); raises DataError on any layout problem."""
    path = Path(path).expanduser()
    if path.is_dir():
        files: _Files = _DirFiles(path)
    elif path.is_file():
        files = _ZipFiles(path)
    else:
        raise DataError(f"{path}: not found (expected the Tiny ImageNet .zip or its extracted folder)")
    try:
        wnids = _read_wnids(files)
        return TinyImageNetSource(
            path=path,
            wnids=wnids,
            class_names=_read_names(files, wnids),
            train=_read_train(files, wnids),
            val=_read_val(files, wnids),
            _files=files,
        )
    except BaseException:
        files.close()
        raise
