"""Small real datasets for the data tests, cut from the mini archive (no tests here).

The official layout with the first ``classes`` classes, ``train`` train images each (by numeric index)
and the first ``val`` val images of each class, with the original text lines.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

ROOT = "tiny-imagenet-200"


def read_annotations(zf: zipfile.ZipFile) -> list[tuple[str, str]]:
    """``(file, wnid)`` per line of val_annotations.txt, in file order."""
    text = zf.read(f"{ROOT}/val/val_annotations.txt").decode()
    return [tuple(line.split("\t")[:2]) for line in text.splitlines() if line]


def build_small_dataset(mini_zip: Path, dest: Path, classes: int = 3, train: int = 12, val: int = 2) -> Path:
    """Write the subset as an extracted folder ``dest/tiny-imagenet-200``; returns that folder."""
    root = dest / ROOT
    with zipfile.ZipFile(mini_zip) as zf:
        wnids = zf.read(f"{ROOT}/wnids.txt").decode().split()[:classes]
        words = [line for line in zf.read(f"{ROOT}/words.txt").decode().splitlines() if line[:9] in wnids]
        (root / "val" / "images").mkdir(parents=True)
        (root / "wnids.txt").write_text("\n".join(wnids) + "\n")
        (root / "words.txt").write_text("\n".join(words) + "\n")
        for wnid in wnids:
            folder = root / "train" / wnid / "images"
            folder.mkdir(parents=True)
            for i in range(train):
                name = f"{wnid}_{i}.JPEG"
                (folder / name).write_bytes(zf.read(f"{ROOT}/train/{wnid}/images/{name}"))
        kept, lines = {w: 0 for w in wnids}, []
        for file, wnid in read_annotations(zf):
            if wnid in kept and kept[wnid] < val:
                kept[wnid] += 1
                lines.append(f"{file}\t{wnid}\t0\t0\t63\t63")
                (root / "val" / "images" / file).write_bytes(zf.read(f"{ROOT}/val/images/{file}"))
        (root / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    return root


def zip_folder(folder: Path, archive: Path, extra: dict[str, bytes] | None = None) -> Path:
    """Zip ``folder`` under its own name (as the official archive does), plus ``extra`` raw entries."""
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(folder.rglob("*")):
            zf.write(path, f"{folder.name}/{path.relative_to(folder).as_posix()}")
        for name, data in (extra or {}).items():
            zf.writestr(name, data)
    return archive


def mini_with(mini_zip: Path, archive: Path, replace: dict[str, bytes]) -> Path:
    """A copy of the mini archive in which the entries named in ``replace`` hold other bytes (entries
    stored, not deflated: a copy takes a second)."""
    with zipfile.ZipFile(mini_zip) as source, zipfile.ZipFile(archive, "w") as copy:
        for info in source.infolist():
            data = replace.get(info.filename, b"" if info.is_dir() else source.read(info))
            info.compress_type = zipfile.ZIP_STORED
            copy.writestr(info, data)
    return archive
