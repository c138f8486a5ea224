"""Batches sliced from the whole uint8 dataset on the training device (airbench style).

No DataLoader and no per-image Python: the dataset lives on the device as uint8 N×64×64×3, each batch is
one gather, and conversion, augmentation, resizing and normalisation are whole-batch tensor ops.
Output images are float32 N×3×px×px in ``torch.channels_last`` (the NHWC dataset permuted is already
that layout), normalised with the ImageNet mean and std.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch

from tinyab.config import AugmentConfig
from tinyab.data import augment as aug

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class Batch:
    """``images`` float32 N×3×px×px (channels_last); ``labels`` the hard int64 labels (for accuracy);
    ``mix`` None, or ``(labels_b, lam)``: loss = lam·CE(labels) + (1-lam)·CE(labels_b)."""

    images: torch.Tensor
    labels: torch.Tensor
    mix: tuple[torch.Tensor, float] | None = None


def to_float(x: torch.Tensor, px: int | None = None) -> torch.Tensor:
    """uint8 N×H×W×C → float32 N×C×px×px in channels_last memory (values 0..255).

    On CPU the resize runs on uint8 (7× faster than on float; CUDA has no uint8 antialiased resize).
    """
    images = x.permute(0, 3, 1, 2)
    if px is None:
        return images.float()
    if images.device.type == "cpu":
        images = aug.resize(images, px)
    return aug.resize(images.float(), px)


def normalize(images: torch.Tensor) -> torch.Tensor:
    """(images/255 - mean)/std per channel, in place, as one multiply and one subtract."""
    std = torch.tensor(IMAGENET_STD, device=images.device).view(1, 3, 1, 1)
    mean = torch.tensor(IMAGENET_MEAN, device=images.device).view(1, 3, 1, 1)
    return images.mul_(1 / (255 * std)).sub_(mean / std).contiguous(memory_format=torch.channels_last)


def _augment_batch(
    x: torch.Tensor, y: torch.Tensor, idx: torch.Tensor, px: int, cfg: AugmentConfig, g: torch.Generator
) -> Batch:
    pad = cfg.pad if cfg.crop == "pad" else 0
    if cfg.crop == "random_resized":
        images = aug.random_resized_crop(to_float(x[idx]), px, cfg.min_scale, cfg.flip, g)
    else:
        images = to_float(aug.crop_flip_gather(x, idx, pad, cfg.flip, g), px)
    if cfg.color_jitter > 0:
        images = aug.color_jitter(images, cfg.color_jitter, g)
    labels, mix = y[idx], None
    if cfg.mixup > 0 or cfg.cutmix > 0:
        use_cutmix = cfg.cutmix > 0 and (
            cfg.mixup == 0 or bool(torch.rand(1, generator=g, device=g.device) < 0.5)
        )
        lam = aug.beta(cfg.cutmix if use_cutmix else cfg.mixup, g)
        partner = torch.randperm(len(idx), generator=g, device=g.device).to(x.device)
        if use_cutmix:
            images, lam = aug.cutmix(images, lam, partner, g)
        else:
            images = aug.mixup(images, lam, partner)
        mix = (labels[partner], lam)
    return Batch(normalize(images), labels, mix)


def train_batches(
    x_uint8: torch.Tensor,
    y: torch.Tensor,
    *,
    batch_size: int,
    px: int,
    augment: AugmentConfig,
    augment_on: bool,
    generator: torch.Generator,
    drop_last: bool = True,
) -> Iterator[Batch]:
    """One epoch of shuffled, augmented batches on ``x_uint8``'s device (call once per epoch).

    ``augment_on=False`` (before ``augment.start_epoch``) turns off crop, flip, jitter and mixing;
    resizing to ``px`` always applies.
    """
    cfg = augment if augment_on else AugmentConfig(crop="none", flip=False)
    n = len(x_uint8)
    order = torch.randperm(n, generator=generator, device=generator.device).to(x_uint8.device)
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        idx = order[start : start + batch_size]
        yield _augment_batch(x_uint8, y, idx, px, cfg, generator)


def resize_uint8(x_uint8: torch.Tensor, px: int) -> torch.Tensor:
    """uint8 N×H×W×C resized to N×px×px×C (antialiased bilinear), still uint8 and NHWC.

    On CPU this is the resize :func:`to_float` applies (uint8 arithmetic), so images resized once here
    and converted later equal images converted with ``px`` batch by batch. CUDA has no uint8
    antialiased resize: there the float result is rounded to uint8 (within half a grey level).
    """
    if x_uint8.shape[1] == px and x_uint8.shape[2] == px:
        return x_uint8
    images = x_uint8.permute(0, 3, 1, 2)
    if images.device.type == "cpu":
        resized = aug.resize(images, px)
    else:
        resized = aug.resize(images.float(), px).round_().clamp_(0, 255).to(torch.uint8)
    return resized.permute(0, 2, 3, 1).contiguous()


def eval_batches(
    x_uint8: torch.Tensor, y: torch.Tensor, *, batch_size: int, px: int | None = None
) -> Iterator[Batch]:
    """The data in order, unaugmented, at ``px`` (default: the images' own size, 64 px for the
    dataset); the last batch may be smaller. To evaluate at one px many times, resize the whole set
    once with :func:`resize_uint8` and pass ``px=None``."""
    for start in range(0, len(x_uint8), batch_size):
        images = to_float(x_uint8[start : start + batch_size], px)
        yield Batch(normalize(images), y[start : start + batch_size])
