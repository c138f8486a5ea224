"""The optimiser: param groups partition the model exactly and weight decay hits only the right tensors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tinyab.config import OptimConfig
from tinyab.train.optim import build_optimizer

LR, WD = 0.1, 0.05


def small_model() -> nn.Sequential:
    """Conv (with bias) -> BatchNorm -> LayerNorm over (C, H, W) (3-D weight) -> Linear."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3),
        nn.BatchNorm2d(4),
        nn.LayerNorm([4, 4, 4]),
        nn.Flatten(),
        nn.Linear(64, 5),
    )


def exempt_names() -> set[str]:
    """Written out by hand: every bias, every BatchNorm/LayerNorm parameter (incl. the 3-D LN weight)."""
    return {"0.bias", "1.weight", "1.bias", "2.weight", "2.bias", "4.bias"}


def names_of(model: nn.Module, params: list[torch.Tensor]) -> list[str]:
    by_id = {id(p): n for n, p in model.named_parameters()}
    return [by_id[id(p)] for p in params]


@pytest.mark.parametrize("name", ["sgd", "adamw"])
def test_groups_partition_parameters_exactly(name):
    model = small_model()
    opt = build_optimizer(model, OptimConfig(name=name, lr=LR, weight_decay=WD, decay_bn_and_bias=False))
    assert len(opt.param_groups) == 2
    decayed, exempt = (names_of(model, g["params"]) for g in opt.param_groups)
    assert [g["weight_decay"] for g in opt.param_groups] == [WD, 0.0]
    assert set(exempt) == exempt_names() and set(decayed) == {"0.weight", "4.weight"}
    all_names = [n for n, _ in model.named_parameters()]
    assert sorted(decayed + exempt) == sorted(all_names)  # none missing, none twice
    assert all(g["lr"] == LR for g in opt.param_groups)


def test_decay_everything_is_one_group():
    model = small_model()
    opt = build_optimizer(model, OptimConfig(weight_decay=WD, decay_bn_and_bias=True))
    assert len(opt.param_groups) == 1 and opt.param_groups[0]["weight_decay"] == WD
    assert names_of(model, opt.param_groups[0]["params"]) == [n for n, _ in model.named_parameters()]


def test_shared_parameter_appears_once():
    linear = nn.Linear(3, 3)
    model = nn.Sequential(linear, nn.ReLU(), linear)
    opt = build_optimizer(model, OptimConfig(decay_bn_and_bias=False))
    ids = [id(p) for g in opt.param_groups for p in g["params"]]
    assert sorted(ids) == sorted({id(linear.weight), id(linear.bias)})


def zero_grad_step(model: nn.Module, opt: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    """One step with all-zero gradients, so the only change is weight decay; returns the old values."""
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    return before


def test_sgd_nesterov_decays_only_the_decay_group():
    model = small_model()
    opt = build_optimizer(model, OptimConfig(name="sgd", lr=LR, momentum=0.9, nesterov=True, weight_decay=WD))
    assert opt.defaults["nesterov"] is True and opt.defaults["momentum"] == 0.9
    assert opt.defaults["foreach"] is True
    before = zero_grad_step(model, opt)
    # first step: buf = g + wd*p = wd*p; Nesterov update = wd*p + 0.9*buf = 1.9*wd*p
    for name, p in model.named_parameters():
        factor = 1.0 if name in exempt_names() else 1 - LR * 1.9 * WD
        torch.testing.assert_close(p.detach(), before[name] * factor, rtol=1e-6, atol=0)


def test_adamw_decoupled_decay_only_on_decay_group():
    model = small_model()
    opt = build_optimizer(model, OptimConfig(name="adamw", lr=LR, weight_decay=WD))
    assert isinstance(opt, torch.optim.AdamW) and opt.defaults["foreach"] is True
    before = zero_grad_step(model, opt)
    # AdamW multiplies by (1 - lr*wd); with zero gradients the Adam update itself is exactly 0
    for name, p in model.named_parameters():
        factor = 1.0 if name in exempt_names() else 1 - LR * WD
        torch.testing.assert_close(p.detach(), before[name] * factor, rtol=1e-6, atol=0)


def test_nesterov_needs_momentum():
    opt = build_optimizer(small_model(), OptimConfig(name="sgd", momentum=0.0, nesterov=True))
    assert opt.defaults["nesterov"] is False and opt.defaults["momentum"] == 0.0
    plain = build_optimizer(small_model(), OptimConfig(name="sgd", momentum=0.5, nesterov=False))
    assert plain.defaults["nesterov"] is False and plain.defaults["momentum"] == 0.5
