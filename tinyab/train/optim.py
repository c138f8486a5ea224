"""The optimiser: SGD (momentum, Nesterov) or AdamW, with optional weight-decay exclusions.

Decaying BatchNorm/LayerNorm scales and biases only shrinks parameters whose scale the next
normalisation undoes (or that are not scale-invariant at all), so the usual recipe exempts them:
with ``decay_bn_and_bias=False`` every norm-layer parameter and every parameter with ``ndim <= 1``
goes to a second param group with ``weight_decay=0``.
"""

from __future__ import annotations

import torch
from torch import nn

from tinyab.config import OptimConfig

NORM_LAYERS = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm)


def no_decay_parameters(model: nn.Module) -> set[int]:
    """Ids of the parameters exempt from weight decay: norm-layer parameters and all 1-D ones."""
    exempt = {id(p) for p in model.parameters() if p.ndim <= 1}
    for module in model.modules():
        if isinstance(module, NORM_LAYERS):
            exempt.update(id(p) for p in module.parameters(recurse=False))
    return exempt


def param_groups(model: nn.Module, weight_decay: float, decay_bn_and_bias: bool) -> list[dict]:
    """One group with ``weight_decay`` for all parameters, or, when ``decay_bn_and_bias`` is False,
    a decayed group and a ``weight_decay=0`` group that together hold each parameter exactly once."""
    params = list(model.parameters())  # deduplicated: a shared parameter appears once
    if decay_bn_and_bias:
        return [{"params": params, "weight_decay": weight_decay}]
    exempt = no_decay_parameters(model)
    groups = [
        {"params": [p for p in params if id(p) not in exempt], "weight_decay": weight_decay},
        {"params": [p for p in params if id(p) in exempt], "weight_decay": 0.0},
    ]
    return [g for g in groups if g["params"]]


def build_optimizer(model: nn.Module, cfg: OptimConfig) -> torch.optim.Optimizer:
    """SGD (Nesterov only when momentum > 0) or AdamW (decoupled decay) at initial lr ``cfg.lr``."""
    groups = param_groups(model, cfg.weight_decay, cfg.decay_bn_and_bias)
    if cfg.name == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr, foreach=True)
    return torch.optim.SGD(
        groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov and cfg.momentum > 0, foreach=True
    )
