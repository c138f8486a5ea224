"""Named architectures, including reconstructions of the seed study's two networks.

The seed study (ResNets trained from scratch on Tiny ImageNet) reports only parameter counts:
"Network 1" 17.9M (resolution schedule, then augmentation) and "Network 2" 11.8M (CLR). Their exact
layers are unknown; ``seed_net1``/``seed_net2`` are plausible ResNet-18 relatives that keep the
canonical 64-128-256-512 widths and add BasicBlocks until the count lands within ±3%. Counts below
are for 200 classes, the 3×3 (``cifar``) stem and width 1; the ``imagenet`` stem adds 7,680.
docs/models.md gives the full table and the alternatives considered.
"""

from __future__ import annotations

from torch import nn

from tinyab.config import ModelConfig
from tinyab.errors import ConfigError
from tinyab.models.resnet import ResNet, ResNetSpec
from tinyab.schema import suggest

_RESNET_WIDTHS = (64, 128, 256, 512)

ARCHS: dict[str, ResNetSpec] = {
    # A fast CPU network: one BasicBlock per stage at a quarter of ResNet-18's widths (333,336 params).
    "resnet_small": ResNetSpec("basic", (1, 1, 1, 1), (16, 32, 64, 128)),
    "resnet18": ResNetSpec("basic", (2, 2, 2, 2), _RESNET_WIDTHS),
    "resnet34": ResNetSpec("basic", (3, 4, 6, 3), _RESNET_WIDTHS),
    "resnet50": ResNetSpec("bottleneck", (3, 4, 6, 3), _RESNET_WIDTHS),
    # Network 1 (17.9M): ResNet-18 with a third BasicBlock in every stage ("ResNet-26"), 3×3 stem:
    # 17,542,152 parameters (-2.0%).
    "seed_net1": ResNetSpec("basic", (3, 3, 3, 3), _RESNET_WIDTHS),
    # Network 2 (11.8M): ResNet-18 with a third BasicBlock in the 128-channel stage, 3×3 stem:
    # 11,566,856 parameters (-2.0%). Plain ResNet-18 (11,271,432 at 200 classes) is -4.5%.
    "seed_net2": ResNetSpec("basic", (2, 3, 2, 2), _RESNET_WIDTHS),
}


def build_model(cfg: ModelConfig, num_classes: int) -> nn.Module:
    """The network named by ``cfg.arch`` with the stem, width and dropouts of ``cfg``.

    Weights are PyTorch's per-module defaults; call :func:`tinyab.models.apply_init` to choose them.
    """
    spec = ARCHS.get(cfg.arch)
    if spec is None:
        raise ConfigError(
            f"model.arch: unknown architecture '{cfg.arch}'{suggest(cfg.arch, ARCHS)}; "
            f"expected one of {', '.join(ARCHS)}"
        )
    if num_classes < 1:
        raise ConfigError(f"model: num_classes must be a positive integer, got {num_classes}")
    return ResNet(
        spec,
        num_classes,
        stem=cfg.stem,
        width=cfg.width,
        dropout=cfg.dropout,
        block_dropout=cfg.block_dropout,
    )


def count_parameters(model: nn.Module) -> int:
    """All parameters (trainable or not), counted as torchvision and papers count them."""
    return sum(p.numel() for p in model.parameters())
