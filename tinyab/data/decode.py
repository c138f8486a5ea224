"""Decode Tiny ImageNet JPEGs into one uint8 N×64×64×3 tensor, checking every image.

``torchvision.io.decode_jpeg`` on lists of byte tensors in UNCHANGED mode is the fastest decoder here
(~23,000 images/s on 2 cores, vs ~10,000 in RGB mode and ~5,500 with Pillow); grayscale images come
back with one channel, which is counted and replicated to RGB (byte-identical to libjpeg's and
Pillow's RGB conversion).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Iterator, Sequence

import torch

from tinyab.data.progress import progress_bar
from tinyab.errors import DataError

SIZE = 64
CHUNK = 512
_LOCATION = re.compile(r"^\w+, \S+:\d+, ")


def _reason(err: RuntimeError) -> str:
    """libjpeg's words without torchvision's source location ("decode_jpeg, <file>:<line>, <reason>")."""
    first = (str(err).strip().splitlines() or ["cannot be decoded"])[0]
    return _LOCATION.sub("", first)


def _as_tensor(data: bytes) -> torch.Tensor:
    return torch.frombuffer(bytearray(data), dtype=torch.uint8)


def _decode_chunk(datas: list[bytes], labels: list[str]) -> list[torch.Tensor]:
    """Decode a list in one call; on failure decode one by one to name the bad file."""
    # imported here: torchvision costs ~1 s of start-up that training from the cache does not need
    from torchvision.io import ImageReadMode, decode_jpeg

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torchvision 0.29 points to TorchCodec
        if all(datas):
            try:
                return decode_jpeg([_as_tensor(d) for d in datas], mode=ImageReadMode.UNCHANGED)
            except RuntimeError:
                pass
        images = []
        for data, label in zip(datas, labels, strict=True):
            if not data:
                raise DataError(f"{label}: corrupt JPEG (empty file)")
            try:
                images.append(decode_jpeg(_as_tensor(data), mode=ImageReadMode.UNCHANGED))
            except RuntimeError as err:
                raise DataError(f"{label}: corrupt JPEG ({_reason(err)})") from None
        return images


def decode_chunks(
    names: Sequence[str],
    read: Callable[[str], bytes],
    label: Callable[[str], str],
    *,
    desc: str = "decoding",
    progress: bool = True,
) -> Iterator[tuple[int, torch.Tensor, int]]:
    """``(start, images, grayscale)`` per chunk of ``names``: uint8 n×64×64×3 RGB and the count of
    grayscale JPEGs among them, with a progress bar on stderr.

    Raises DataError naming the file for a corrupt JPEG or an image that is not 64×64.
    """
    bar = progress_bar(total=len(names), desc=desc, unit="img", show=progress, leave=False)
    with bar:
        for start in range(0, len(names), CHUNK):
            chunk = list(names[start : start + CHUNK])
            labels = [label(n) for n in chunk]
            images = _decode_chunk([read(n) for n in chunk], labels)
            out = torch.empty((len(chunk), SIZE, SIZE, 3), dtype=torch.uint8)
            grayscale = 0
            for i, (image, where) in enumerate(zip(images, labels, strict=True)):
                channels, height, width = image.shape
                if (height, width) != (SIZE, SIZE):
                    raise DataError(f"{where}: image is {width}×{height}, expected {SIZE}×{SIZE}")
                if channels not in (1, 3):
                    raise DataError(f"{where}: JPEG has {channels} channels, expected RGB or grayscale")
                grayscale += channels == 1
                out[i] = image.permute(1, 2, 0)  # a grayscale channel broadcasts to RGB
            bar.update(len(chunk))
            yield start, out, grayscale


def decode_images(
    names: Sequence[str],
    read: Callable[[str], bytes],
    label: Callable[[str], str],
    *,
    desc: str = "decoding",
    progress: bool = True,
) -> torch.Tensor:
    """All ``names`` as one uint8 N×64×64×3 RGB tensor (see :func:`decode_chunks`)."""
    out = torch.empty((len(names), SIZE, SIZE, 3), dtype=torch.uint8)
    for start, images, _ in decode_chunks(names, read, label, desc=desc, progress=progress):
        out[start : start + len(images)] = images
    return out
