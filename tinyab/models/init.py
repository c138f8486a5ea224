"""Weight initialisation schemes with exact definitions, so an init arm means one thing.

Every ``nn.Conv2d`` and ``nn.Linear`` weight is drawn by the scheme; fans are

    fan_in  = in_channels / groups · kh · kw   (Linear: in_features)
    fan_out = out_channels · kh · kw           (Linear: out_features)

and, for every scheme except ``torch_default``, all biases are 0 and every BatchNorm has γ=1, β=0
(running statistics reset). With ``zero_init_residual`` the γ of the last BN of each residual branch
(a block's ``bn_last``) is set to 0, so each block starts as the identity (Goyal et al., 2017).

Schemes (``InitConfig.scheme``):

``variance_scaling`` — target variance ``scale / n``, with n = fan_in, fan_out or
    (fan_in + fan_out) / 2 (``mode``: fan_in / fan_out / fan_avg), drawn as (``distribution``)
    normal: N(0, σ²), σ = sqrt(scale / n);
    truncated_normal: N(0, s²) truncated to [-2s, 2s] with s = sqrt(scale / n) / 0.87962566103423978,
    the std of a unit normal truncated at ±2, so the drawn values have variance scale / n (as Keras's
    VarianceScaling);
    uniform: U(-L, L), L = sqrt(3 · scale / n).
    scale=2, fan_in, normal is He/Kaiming normal; scale=1, fan_avg, uniform is Glorot uniform.
``xavier`` — Glorot with gain 1 (``scale`` and ``mode`` are not used): uniform: U(-a, a),
    a = sqrt(6 / (fan_in + fan_out)); normal: N(0, 2 / (fan_in + fan_out)); truncated_normal is
    treated as normal (torch's xavier_normal_ has no truncated form).
``orthogonal`` — ``torch.nn.init.orthogonal_`` on the weight viewed as (out, in/groups · kh · kw), with
    gain sqrt(scale): W Wᵀ = scale · I when out ≤ in·kh·kw, else Wᵀ W = scale · I (``mode`` and
    ``distribution`` are not used). scale=2 matches the He gain for ReLU.
``torch_default`` — each module's own ``reset_parameters()``: PyTorch's default, kaiming_uniform_ with
    a = sqrt(5), i.e. U(±sqrt(1 / fan_in)) for conv and linear weights, biases U(±1 / sqrt(fan_in)),
    BN γ=1, β=0. This is neither He (its variance is 1/(3·fan_in), a sixth of He's) nor Xavier.
    Only ``zero_init_residual`` is applied on top.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from tinyab.config import InitConfig
from tinyab.errors import ConfigError

# Standard deviation of a unit normal truncated to [-2, 2] (Keras VarianceScaling's correction).
TRUNCATED_NORMAL_STD = 0.87962566103423978

_LAYERS = (nn.Conv2d, nn.Linear)
_MODES = ("fan_in", "fan_out", "fan_avg")
_DISTRIBUTIONS = ("normal", "truncated_normal", "uniform")


def fans(weight: torch.Tensor) -> tuple[int, int]:
    """(fan_in, fan_out) of a conv or linear weight of shape (out, in/groups, *kernel)."""
    receptive = math.prod(weight.shape[2:])
    return weight.shape[1] * receptive, weight.shape[0] * receptive


def variance_scaling_(weight: torch.Tensor, scale: float, mode: str, distribution: str) -> None:
    """Draw ``weight`` in place with variance scale / n; see the module docstring."""
    fan_in, fan_out = fans(weight)
    n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[mode]
    variance = scale / n
    if distribution == "normal":
        nn.init.normal_(weight, 0.0, math.sqrt(variance))
    elif distribution == "truncated_normal":
        std = math.sqrt(variance) / TRUNCATED_NORMAL_STD
        nn.init.trunc_normal_(weight, 0.0, std, -2 * std, 2 * std)
    else:
        limit = math.sqrt(3 * variance)
        nn.init.uniform_(weight, -limit, limit)


def xavier_(weight: torch.Tensor, distribution: str) -> None:
    """Glorot with gain 1; truncated_normal is drawn as normal."""
    if distribution == "uniform":
        nn.init.xavier_uniform_(weight)
    else:
        nn.init.xavier_normal_(weight)


def orthogonal_(weight: torch.Tensor, scale: float) -> None:
    """Orthogonal rows (or columns) of the flattened weight, times sqrt(scale)."""
    nn.init.orthogonal_(weight, gain=math.sqrt(scale))


def _check(cfg: InitConfig) -> None:
    """Refuse a bad config before any layer is touched (no half-initialised model)."""
    choices = (("mode", cfg.mode, _MODES), ("distribution", cfg.distribution, _DISTRIBUTIONS))
    for name, value, valid in choices:
        if value not in valid:
            raise ConfigError(f"init.{name}: unknown '{value}'; expected one of {', '.join(valid)}")
    if cfg.scale <= 0:
        raise ConfigError(f"init.scale: expected a positive number, got {cfg.scale}")


def _weight_fn(cfg: InitConfig) -> Callable[[torch.Tensor], None]:
    """The weight-drawing function of a scheme other than torch_default."""
    if cfg.scheme == "variance_scaling":
        return lambda w: variance_scaling_(w, cfg.scale, cfg.mode, cfg.distribution)
    if cfg.scheme == "xavier":
        return lambda w: xavier_(w, cfg.distribution)
    if cfg.scheme == "orthogonal":
        return lambda w: orthogonal_(w, cfg.scale)
    raise ConfigError(
        f"init.scheme: unknown '{cfg.scheme}'; expected variance_scaling, xavier, orthogonal or torch_default"
    )


@torch.no_grad()
def apply_init(model: nn.Module, cfg: InitConfig) -> None:
    """Initialise every conv, linear and BN layer of ``model`` in place as ``cfg`` says.

    Draws from torch's global RNG, so ``torch.manual_seed(s)`` first gives the same weights each time.
    """
    _check(cfg)
    draw = None if cfg.scheme == "torch_default" else _weight_fn(cfg)
    for module in model.modules():
        if isinstance(module, _BatchNorm) or (draw is None and isinstance(module, _LAYERS)):
            module.reset_parameters()  # BN: γ=1, β=0, fresh running statistics
        elif isinstance(module, _LAYERS):
            draw(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
    if cfg.zero_init_residual:
        for module in model.modules():
            last = getattr(module, "bn_last", None)
            if isinstance(last, _BatchNorm):
                nn.init.zeros_(last.weight)
