"""Per-image random augmentation of whole batches, vectorised on the batch's device.

Every random number comes from the caller's ``torch.Generator`` (drawn on the generator's device and
moved to the batch's), so one seed gives the same batches. The reflect-padded crop and the flip are
index arithmetic on uint8 (one gather from the dataset tensor); the random-resized crop is a separable
resampling by per-image weight matrices.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

# Luma weights exactly as torchvision's rgb_to_grayscale (ITU-R 601).
_LUMA = (0.2989, 0.587, 0.114)


def uniform(
    n: int, low: float, high: float, generator: torch.Generator, device: torch.device
) -> torch.Tensor:
    """``n`` floats in [low, high) from ``generator``, on ``device``."""
    return (torch.rand(n, generator=generator, device=generator.device) * (high - low) + low).to(device)


def _reflect(index: torch.Tensor, size: int) -> torch.Tensor:
    """Map indices in [-size+1, 2·size-2] into [0, size) as reflect padding does (edge not repeated)."""
    index = index.abs()
    return torch.where(index >= size, 2 * (size - 1) - index, index)


def crop_flip_gather(
    x: torch.Tensor,
    idx: torch.Tensor,
    pad: int,
    flip: bool,
    generator: torch.Generator,
) -> torch.Tensor:
    """``x[idx]`` (uint8 N×H×W×C), each image shifted by up to ``pad`` pixels with reflect padding
    (a random crop of the padded image) and mirrored with probability 1/2, in one gather."""
    n, size, device = len(idx), x.shape[1], x.device
    base = torch.arange(size, device=device)
    shifts = (
        torch.randint(0, 2 * pad + 1, (n, 2), generator=generator, device=generator.device).to(device) - pad
    )
    rows = _reflect(base + shifts[:, :1], size)
    cols = _reflect(base + shifts[:, 1:], size)
    if flip:
        mirrored = torch.rand(n, generator=generator, device=generator.device).to(device) < 0.5
        cols = torch.where(mirrored[:, None], cols.flip(1), cols)
    # One index per pixel into the (N·H·W)×C view: index_select of 3-byte rows is ~3× faster than
    # advanced indexing with three index tensors.
    pixels = (idx[:, None, None] * size + rows[:, :, None]) * size + cols[:, None, :]
    return x.view(-1, x.shape[-1]).index_select(0, pixels.view(-1)).view(n, size, size, x.shape[-1])


def span_weights(start: torch.Tensor, length: torch.Tensor, size: int, out: int) -> torch.Tensor:
    """N×out×size weights that resample the source span [start, start+length) (in pixels, per image)
    to ``out`` pixels: a triangle filter widened by the downscale factor, i.e. antialiased bilinear
    (equal to ``F.interpolate(..., antialias=True)`` for the whole image)."""
    scale = length / out  # source pixels per output pixel
    support = scale.clamp(min=1.0)
    centre = start[:, None] + (torch.arange(out, device=start.device) + 0.5) * scale[:, None]
    source = torch.arange(size, device=start.device) + 0.5
    weights = (1 - (source - centre[:, :, None]).abs() / support[:, None, None]).clamp_(min=0)
    return weights / weights.sum(-1, keepdim=True)


def random_resized_crop(
    images: torch.Tensor, px: int, min_scale: float, flip: bool, generator: torch.Generator, tries: int = 10
) -> torch.Tensor:
    """Each float N×C×S×S image cropped to a random box, resized to px×px (antialiased bilinear) and
    mirrored with p=1/2. Boxes as torchvision's RandomResizedCrop: area fraction in [min_scale, 1], aspect
    ratio log-uniform in [3/4, 4/3], the first of ``tries`` draws that fits, else the whole image.

    Crop and resize are one separable resampling, two small batched matrix products per image; on CPU
    that is 1.5-2.5× faster than grid_sample followed by a resize.
    """
    n, size, device = len(images), images.shape[-1], images.device
    area = uniform(n * tries, min_scale, 1.0, generator, device).view(n, tries)
    ratio = uniform(n * tries, math.log(3 / 4), math.log(4 / 3), generator, device).view(n, tries).exp()
    widths, heights = (area * ratio).sqrt(), (area / ratio).sqrt()
    fits = (widths <= 1) & (heights <= 1)
    first = fits.to(torch.uint8).argmax(1, keepdim=True)
    width = torch.where(fits.any(1), widths.gather(1, first).squeeze(1), 1.0) * size
    height = torch.where(fits.any(1), heights.gather(1, first).squeeze(1), 1.0) * size
    left = uniform(n, 0.0, 1.0, generator, device) * (size - width)
    top = uniform(n, 0.0, 1.0, generator, device) * (size - height)
    cols = span_weights(left, width, size, px)
    if flip:
        mirrored = uniform(n, 0.0, 1.0, generator, device) < 0.5
        cols = torch.where(mirrored[:, None, None], cols.flip(1), cols)
    rows = span_weights(top, height, size, px)
    return rows[:, None] @ images.contiguous() @ cols[:, None].transpose(-1, -2)


def jitter(
    images: torch.Tensor, brightness: torch.Tensor, contrast: torch.Tensor, saturation: torch.Tensor
) -> torch.Tensor:
    """Brightness, contrast, then saturation of float N×3×H×W images (0..255) by per-image factors,
    in place. As torchvision's adjust_* functions, except for one clamp to 0..255 at the end instead of
    one per step: the three steps then fuse into x·c·b·s + grey(x)·c·b·(1-s) + mean_grey(x)·(1-c)·b,
    with the grey image from one 1×1 convolution (fast in channels_last)."""
    luma = torch.tensor(_LUMA, device=images.device, dtype=images.dtype).view(1, 3, 1, 1)
    grey = F.conv2d(images, luma)  # N×1×H×W
    mean = grey.mean((2, 3), keepdim=True)
    b, c, s = (f.view(-1, 1, 1, 1) for f in (brightness, contrast, saturation))
    shift = grey.mul_(c * b * (1 - s)).add_((1 - c) * b * mean)
    return images.mul_(c * b * s).add_(shift).clamp_(0, 255)


def color_jitter(images: torch.Tensor, strength: float, generator: torch.Generator) -> torch.Tensor:
    """:func:`jitter` with factors drawn uniformly from [1-strength, 1+strength] per image."""
    n, device = len(images), images.device
    factors = [uniform(n, 1 - strength, 1 + strength, generator, device) for _ in range(3)]
    return jitter(images, *factors)


def beta(alpha: float, generator: torch.Generator) -> float:
    """One Beta(alpha, alpha) draw, seeded from ``generator`` (torch's Beta takes no generator)."""
    seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device))
    return float(np.random.default_rng(seed).beta(alpha, alpha))


def mixup(images: torch.Tensor, lam: float, partner: torch.Tensor) -> torch.Tensor:
    """``lam·images + (1-lam)·images[partner]``."""
    return images * lam + images[partner] * (1 - lam)


def cutmix(
    images: torch.Tensor, lam: float, partner: torch.Tensor, generator: torch.Generator
) -> tuple[torch.Tensor, float]:
    """Paste one box of area ~(1-lam) from ``images[partner]`` into every image; returns the images and
    lam corrected to the box's exact area after clipping to the image."""
    size = images.shape[-1]
    cut = round(size * math.sqrt(1 - lam))
    cy, cx = (int(v) for v in torch.randint(0, size, (2,), generator=generator, device=generator.device))
    top, bottom = max(cy - cut // 2, 0), min(cy + (cut + 1) // 2, size)
    left, right = max(cx - cut // 2, 0), min(cx + (cut + 1) // 2, size)
    mixed = images.clone()
    mixed[:, :, top:bottom, left:right] = images[partner, :, top:bottom, left:right]
    return mixed, 1 - (bottom - top) * (right - left) / size**2


def resize(images: torch.Tensor, px: int) -> torch.Tensor:
    """Bilinear resize of N×C×H×W with antialiasing (so downscaling does not alias); float, or uint8
    on CPU."""
    if images.shape[-1] == px:
        return images
    return F.interpolate(images, size=(px, px), mode="bilinear", antialias=True, align_corners=False)
