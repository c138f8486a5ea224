"""ResNet family for 64 px Tiny ImageNet images, written out so every layer is visible.

Not a torchvision wrapper: torchvision's constructor re-initialises convs with He ``fan_out``, which
would silently override the init arm of an experiment. Here the constructor leaves PyTorch's
per-module defaults, and ``tinyab.models.init.apply_init`` decides the initial weights.

Layout follows torchvision's ResNet v1.5 (stride on the 3×3 conv of a bottleneck, 1×1 conv + BN
projection shortcut when the shape changes), so ``resnet18`` with the ImageNet stem and 1000 classes
has exactly torchvision's 11,689,512 parameters.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

Stem = Literal["cifar", "imagenet"]


def _dropout(p: float) -> nn.Module:
    """Dropout, or nothing at all when p is 0 (keeps compiled graphs and state dicts minimal)."""
    return nn.Dropout(p) if p > 0 else nn.Identity()


def _shortcut(in_ch: int, out_ch: int, stride: int) -> nn.Module:
    """Identity when the shape is kept, else a strided 1×1 conv + BN projection."""
    if stride == 1 and in_ch == out_ch:
        return nn.Identity()
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, kernel_size=1, stride=stride, bias=False), nn.BatchNorm2d(out_ch)
    )


class BasicBlock(nn.Module):
    """Two 3×3 convs (ResNet-18/34). ``bn_last`` is the BN that zero-init-residual sets to γ=0."""

    expansion = 1

    def __init__(self, in_ch: int, width: int, stride: int = 1, block_dropout: float = 0.0) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, width, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, kernel_size=3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.drop = _dropout(block_dropout)
        self.shortcut = _shortcut(in_ch, width, stride)
        self.relu = nn.ReLU(inplace=True)

    @property
    def bn_last(self) -> nn.BatchNorm2d:
        return self.bn2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.drop(self.bn2(self.conv2(out)))
        return self.relu(out + self.shortcut(x))


class Bottleneck(nn.Module):
    """1×1 reduce, 3×3 (carries the stride), 1×1 expand ×4 (ResNet-50)."""

    expansion = 4

    def __init__(self, in_ch: int, width: int, stride: int = 1, block_dropout: float = 0.0) -> None:
        super().__init__()
        out_ch = width * self.expansion
        self.conv1 = nn.Conv2d(in_ch, width, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out_ch, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_ch)
        self.drop = _dropout(block_dropout)
        self.shortcut = _shortcut(in_ch, out_ch, stride)
        self.relu = nn.ReLU(inplace=True)

    @property
    def bn_last(self) -> nn.BatchNorm2d:
        return self.bn3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.drop(self.bn3(self.conv3(out)))
        return self.relu(out + self.shortcut(x))


BLOCKS: dict[str, type[BasicBlock] | type[Bottleneck]] = {"basic": BasicBlock, "bottleneck": Bottleneck}


@dataclass(frozen=True)
class ResNetSpec:
    """The shape of a ResNet: block kind, blocks per stage, and base width of each stage (before the
    width multiplier; a bottleneck stage outputs 4× its width)."""

    block: Literal["basic", "bottleneck"]
    depths: tuple[int, ...]
    widths: tuple[int, ...]


def _stem(stem: Stem, out_ch: int) -> nn.Sequential:
    """``cifar``: 3×3 stride 1, full resolution; ``imagenet``: 7×7 stride 2 + 3×3 max-pool stride 2 (/4)."""
    if stem == "cifar":
        conv = nn.Conv2d(3, out_ch, kernel_size=3, stride=1, padding=1, bias=False)
        return nn.Sequential(conv, nn.BatchNorm2d(out_ch), nn.ReLU(inplace=True))
    if stem == "imagenet":
        conv = nn.Conv2d(3, out_ch, kernel_size=7, stride=2, padding=3, bias=False)
        pool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        return nn.Sequential(conv, nn.BatchNorm2d(out_ch), nn.ReLU(inplace=True), pool)
    raise ValueError(f"unknown stem {stem!r}; expected 'cifar' or 'imagenet'")


def scaled(width: int, multiplier: float) -> int:
    """A stage width times the multiplier, rounded, never below 1 channel."""
    return max(1, round(width * multiplier))


class ResNet(nn.Module):
    """Stem, stages (the first keeps resolution, each later one halves it), global average pool,
    dropout, linear classifier. Adaptive pooling makes any input of at least 16 px work."""

    def __init__(
        self,
        spec: ResNetSpec,
        num_classes: int,
        *,
        stem: Stem = "cifar",
        width: float = 1.0,
        dropout: float = 0.0,
        block_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        block = BLOCKS[spec.block]
        widths = [scaled(w, width) for w in spec.widths]
        self.stem = _stem(stem, widths[0])
        in_ch = widths[0]
        stages = []
        for i, (depth, w) in enumerate(zip(spec.depths, widths, strict=True)):
            blocks = []
            for j in range(depth):
                stride = 2 if i > 0 and j == 0 else 1
                blocks.append(block(in_ch, w, stride, block_dropout))
                in_ch = w * block.expansion
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = _dropout(dropout)
        self.fc = nn.Linear(in_ch, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stages(self.stem(x))
        return self.fc(self.dropout(torch.flatten(self.pool(x), 1)))
