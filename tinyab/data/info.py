"""What a dataset holds, checked image by image: counts of classes, images and grayscale JPEGs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tinyab.data.decode import decode_chunks
from tinyab.data.layout import open_dataset


@dataclass(frozen=True)
class DatasetInfo:
    path: Path
    classes: int
    train_images: int
    val_images: int
    grayscale_images: int


def dataset_info(path: str | Path, progress: bool = True) -> DatasetInfo:
    """Read the layout and decode every image (a corrupt or mis-sized image raises DataError).

    Grayscale is counted from the decoded JPEGs' channel count, before conversion to RGB.
    """
    with open_dataset(path) as source:
        names = [n for images in source.train for n in images] + [n for n, _ in source.val]
        chunks = decode_chunks(names, source.read, source.label, desc="checking images", progress=progress)
        grayscale = sum(gray for _, _, gray in chunks)
        return DatasetInfo(
            path=source.path,
            classes=len(source.wnids),
            train_images=sum(len(images) for images in source.train),
            val_images=len(source.val),
            grayscale_images=grayscale,
        )
