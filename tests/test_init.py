"""Init schemes: empirical moments of large layers against the formulas, written out independently."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from tinyab.config import InitConfig, ModelConfig
from tinyab.errors import ConfigError
from tinyab.models import apply_init, build_model

# A large conv (fan_in 256·9 = 2304, fan_out 512·9 = 4608: the modes differ by 2×) and a large linear.
CONV_IN, CONV_OUT, K = 256, 512, 3
LIN_IN, LIN_OUT = 1024, 2048
CONV_FANS = (CONV_IN * K * K, CONV_OUT * K * K)
LIN_FANS = (LIN_IN, LIN_OUT)


def big_net() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(CONV_IN, CONV_OUT, K, bias=True),
        nn.BatchNorm2d(CONV_OUT),
        nn.Flatten(),
        nn.Linear(LIN_IN, LIN_OUT),
    )


def initialised(**init: object) -> tuple[torch.Tensor, torch.Tensor]:
    """(conv weight, linear weight) of big_net after apply_init."""
    torch.manual_seed(0)
    net = big_net()
    apply_init(net, InitConfig(**init))
    return net[0].weight.detach(), net[3].weight.detach()


def n_of(mode: str, fan_in: int, fan_out: int) -> float:
    return {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[mode]


def close(actual: float, expected: float, rel: float = 0.05) -> bool:
    return abs(actual - expected) <= rel * expected


@pytest.mark.parametrize("scale", [2.0, 1.0])
@pytest.mark.parametrize("mode", ["fan_in", "fan_out", "fan_avg"])
@pytest.mark.parametrize("distribution", ["normal", "truncated_normal", "uniform"])
def test_variance_scaling_moments(distribution: str, mode: str, scale: float) -> None:
    for w, (fan_in, fan_out) in zip(
        initialised(scheme="variance_scaling", mode=mode, distribution=distribution, scale=scale),
        (CONV_FANS, LIN_FANS),
        strict=True,
    ):
        target = scale / n_of(mode, fan_in, fan_out)
        assert close(w.var().item(), target), (w.var().item(), target)
        assert abs(w.mean().item()) < 0.01 * math.sqrt(target)
        sigma = math.sqrt(target)
        beyond_2sigma = (w.abs() > 2 * sigma).float().mean().item()
        if distribution == "normal":
            assert 0.040 < beyond_2sigma < 0.051  # P(|Z| > 2) = 4.55%
        elif distribution == "truncated_normal":
            raw = sigma / 0.87962566103423978
            assert w.abs().max().item() <= 2 * raw
            assert w.abs().max().item() > 0.99 * 2 * raw  # truncated at 2·raw, not narrower
        else:
            limit = math.sqrt(3 * target)
            assert w.abs().max().item() <= limit
            assert w.abs().max().item() > 0.999 * limit
            assert beyond_2sigma == 0  # sqrt(3)σ < 2σ


def test_he_normal_is_variance_scaling_2_fan_in_normal() -> None:
    conv, _ = initialised(scheme="variance_scaling", mode="fan_in", distribution="normal", scale=2.0)
    torch.manual_seed(1)
    reference = torch.empty_like(conv)
    nn.init.kaiming_normal_(reference, mode="fan_in", nonlinearity="relu")
    assert close(conv.var().item(), reference.var().item(), rel=0.01)


@pytest.mark.parametrize("distribution", ["normal", "truncated_normal", "uniform"])
def test_xavier(distribution: str) -> None:
    for w, (fan_in, fan_out) in zip(
        initialised(scheme="xavier", distribution=distribution, scale=7.0, mode="fan_out"),
        (CONV_FANS, LIN_FANS),
        strict=True,
    ):
        target = 2 / (fan_in + fan_out)  # gain 1: scale and mode are not used
        assert close(w.var().item(), target)
        bound = math.sqrt(6 / (fan_in + fan_out))
        if distribution == "uniform":
            assert bound * 0.999 < w.abs().max().item() <= bound
        else:  # truncated_normal is drawn as a plain normal
            assert w.abs().max().item() > 2.5 * math.sqrt(target)


@pytest.mark.parametrize("scale", [1.0, 2.0])
def test_orthogonal(scale: float) -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(64, 128, 3), nn.Flatten(), nn.Linear(16, 64))
    apply_init(net, InitConfig(scheme="orthogonal", scale=scale))
    wide = net[0].weight.detach().reshape(128, -1)  # 128 × 576: orthogonal rows
    tall = net[2].weight.detach()  # 64 × 16: orthogonal columns
    torch.testing.assert_close(wide @ wide.T, scale * torch.eye(128), atol=1e-4, rtol=0)
    torch.testing.assert_close(tall.T @ tall, scale * torch.eye(16), atol=1e-4, rtol=0)


def test_torch_default_is_pytorch_own_init() -> None:
    torch.manual_seed(0)
    net = big_net()
    apply_init(net, InitConfig(scheme="torch_default"))
    for layer, (fan_in, _) in ((net[0], CONV_FANS), (net[3], LIN_FANS)):
        w = layer.weight.detach()
        # kaiming_uniform_(a=sqrt(5)) = U(±sqrt(1/fan_in)): variance 1/(3·fan_in), a sixth of He's.
        assert close(w.var().item(), 1 / (3 * fan_in))
        assert w.abs().max().item() <= math.sqrt(1 / fan_in)
        b = layer.bias.detach()
        assert b.abs().max().item() <= 1 / math.sqrt(fan_in)
        assert b.abs().max().item() > 0.9 / math.sqrt(fan_in)  # PyTorch's bias init, not zeros


ALL_SCHEMES = [
    InitConfig(scheme="variance_scaling"),
    InitConfig(scheme="variance_scaling", distribution="uniform", mode="fan_avg", scale=1.0),
    InitConfig(scheme="xavier", distribution="uniform"),
    InitConfig(scheme="orthogonal"),
    InitConfig(scheme="torch_default"),
]


def small_resnet(arch: str = "resnet_small") -> nn.Module:
    return build_model(ModelConfig(arch=arch, stem="cifar", width=0.25), num_classes=10)


def scramble(model: nn.Module) -> None:
    """Non-default values everywhere, so the test sees what apply_init sets."""
    with torch.no_grad():
        for p in model.parameters():
            p.uniform_(0.5, 1.5)
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.fill_(3.0)
                m.running_var.fill_(5.0)


@pytest.mark.parametrize("cfg", ALL_SCHEMES, ids=lambda c: f"{c.scheme}-{c.distribution}")
def test_batchnorm_and_bias_after_every_scheme(cfg: InitConfig) -> None:
    model = small_resnet()
    scramble(model)
    apply_init(model, cfg)
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(bns) == 1 + 4 * 2 + 3  # stem, two per block, three projection shortcuts
    for bn in bns:
        assert torch.equal(bn.weight, torch.ones_like(bn.weight))
        assert torch.equal(bn.bias, torch.zeros_like(bn.bias))
        assert torch.equal(bn.running_mean, torch.zeros_like(bn.running_mean))
        assert torch.equal(bn.running_var, torch.ones_like(bn.running_var))
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            assert m.weight.min() < 0.5  # redrawn (the scrambled values were all in [0.5, 1.5])
    fc_bias = model.fc.bias
    if cfg.scheme == "torch_default":
        assert fc_bias.abs().max() <= 1 / math.sqrt(model.fc.in_features)
    else:
        assert torch.equal(fc_bias, torch.zeros_like(fc_bias))


@pytest.mark.parametrize(("arch", "blocks"), [("resnet18", 8), ("resnet50", 16)])
@pytest.mark.parametrize("scheme", ["variance_scaling", "torch_default"])
def test_zero_init_residual_zeroes_exactly_the_last_bn_of_each_branch(
    arch: str, blocks: int, scheme: str
) -> None:
    model = small_resnet(arch)
    apply_init(model, InitConfig(scheme=scheme, zero_init_residual=True))
    last_bns = {id(b.bn_last) for stage in model.stages for b in stage}
    assert len(last_bns) == blocks
    zeroed = set()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            if torch.equal(m.weight, torch.zeros_like(m.weight)):
                zeroed.add(id(m))
            else:
                assert torch.equal(m.weight, torch.ones_like(m.weight))
    assert zeroed == last_bns
    apply_init(model, InitConfig(scheme=scheme, zero_init_residual=False))
    gammas = [m.weight for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert all(torch.equal(g, torch.ones_like(g)) for g in gammas)


@pytest.mark.parametrize("cfg", ALL_SCHEMES, ids=lambda c: f"{c.scheme}-{c.distribution}")
def test_same_seed_same_weights(cfg: InitConfig) -> None:
    def state(seed: int) -> dict[str, torch.Tensor]:
        torch.manual_seed(seed)
        model = small_resnet()
        apply_init(model, cfg)
        return model.state_dict()

    a, b, c = state(7), state(7), state(8)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["fc.weight"], c["fc.weight"])


def test_bad_config_refused_before_any_layer_changes() -> None:
    model = small_resnet()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ConfigError, match=r"init\.distribution: unknown 'lognormal'"):
        apply_init(model, InitConfig(distribution="lognormal"))  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"init\.scheme: unknown 'lecun'"):
        apply_init(model, InitConfig(scheme="lecun"))  # type: ignore[arg-type]
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
