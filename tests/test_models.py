"""The ResNet family: parameter counts against torchvision, presets, shapes at every resolution, dropout."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from tinyab.config import ModelConfig
from tinyab.errors import ConfigError
from tinyab.models import ARCHS, build_model, count_parameters


def model(arch: str, stem: str = "cifar", classes: int = 200, **kw: float) -> nn.Module:
    return build_model(ModelConfig(arch=arch, stem=stem, **kw), num_classes=classes)


def test_resnet18_imagenet_stem_matches_torchvision_count() -> None:
    ours = model("resnet18", "imagenet", classes=1000)
    assert count_parameters(ours) == 11_689_512  # torchvision's published resnet18 count


@pytest.mark.parametrize("arch", ["resnet18", "resnet34", "resnet50"])
def test_same_layers_as_torchvision(arch: str) -> None:
    """Same parameter shapes in the same order as torchvision's constructor (an independent build)."""
    ours = model(arch, "imagenet", classes=1000)
    ref = getattr(torchvision.models, arch)(weights=None)
    assert count_parameters(ours) == count_parameters(ref)
    assert [p.shape for p in ours.parameters()] == [p.shape for p in ref.parameters()]


@pytest.mark.parametrize(("arch", "target"), [("seed_net1", 17.9e6), ("seed_net2", 11.8e6)])
@pytest.mark.parametrize("stem", ["cifar", "imagenet"])
def test_seed_presets_match_the_study_parameter_counts(arch: str, target: float, stem: str) -> None:
    n = count_parameters(model(arch, stem))
    assert abs(n - target) <= 0.03 * target, f"{arch}: {n:,} vs {target:,.0f}"


def test_documented_counts() -> None:
    """The counts stated in docs/models.md and the preset comments (200 classes, 3×3 stem)."""
    counts = {arch: count_parameters(model(arch)) for arch in ARCHS}
    assert counts == {
        "resnet_small": 333_336,
        "resnet18": 11_271_432,
        "resnet34": 21_379_592,
        "resnet50": 23_910_152,
        "seed_net1": 17_542_152,
        "seed_net2": 11_566_856,
    }


@pytest.mark.parametrize("arch", list(ARCHS))
@pytest.mark.parametrize("stem", ["cifar", "imagenet"])
def test_forward_at_every_training_resolution(arch: str, stem: str) -> None:
    torch.manual_seed(0)
    net = model(arch, stem, classes=7).eval()
    with torch.no_grad():
        for px in (16, 32, 64):
            out = net(torch.randn(2, 3, px, px))
            assert out.shape == (2, 7)
            assert torch.isfinite(out).all()


@pytest.mark.parametrize(("stem", "spatial"), [("cifar", 64), ("imagenet", 16)])
def test_stem_resolution(stem: str, spatial: int) -> None:
    net = model("resnet_small", stem)
    conv = net.stem[0]
    assert conv.kernel_size == ((3, 3) if stem == "cifar" else (7, 7))
    assert net.stem(torch.randn(1, 3, 64, 64)).shape[-2:] == (spatial, spatial)


@pytest.mark.parametrize(("arch", "features"), [("resnet18", 256), ("resnet50", 1024), ("resnet_small", 64)])
def test_width_multiplier(arch: str, features: int) -> None:
    net = model(arch, width=0.5)
    assert net.fc.in_features == features
    assert net.stem[0].out_channels == ARCHS[arch].widths[0] // 2


def test_classifier_dropout_train_vs_eval() -> None:
    torch.manual_seed(0)
    net = model("resnet_small", dropout=0.5)
    seen: dict[str, torch.Tensor] = {}
    net.dropout.register_forward_hook(lambda m, i, o: seen.update(inp=i[0], out=o))
    x = torch.randn(64, 3, 16, 16)
    net.train()
    net(x)
    dropped = seen["out"] == 0
    assert 0.4 < dropped.float().mean().item() < 0.6
    kept = ~dropped & (seen["inp"] != 0)
    torch.testing.assert_close(seen["out"][kept], 2 * seen["inp"][kept])
    net.eval()
    net(x)
    assert torch.equal(seen["out"], seen["inp"])


def test_block_dropout_train_vs_eval() -> None:
    torch.manual_seed(0)
    plain = model("resnet_small")
    dropping = model("resnet_small", block_dropout=0.3)
    dropping.load_state_dict(plain.state_dict())  # dropout adds no parameters
    drops = [b.drop for stage in dropping.stages for b in stage]
    assert len(drops) == 4 and all(isinstance(d, nn.Dropout) and d.p == 0.3 for d in drops)
    x = torch.randn(4, 3, 16, 16)
    plain.eval()
    dropping.eval()
    with torch.no_grad():
        assert torch.equal(plain(x), dropping(x))
        dropping.train()
        assert not torch.allclose(dropping(x), dropping(x))


def test_no_dropout_modules_when_off() -> None:
    net = model("resnet18")
    assert not any(isinstance(m, nn.Dropout) for m in net.modules())


def test_channels_last_bf16_autocast_compiled_without_graph_breaks() -> None:
    torch.manual_seed(0)
    net = model("resnet_small").to(memory_format=torch.channels_last)
    compiled = torch.compile(net, backend="aot_eager", fullgraph=True)
    x = torch.randn(4, 3, 32, 32).to(memory_format=torch.channels_last)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = compiled(x)
    assert out.shape == (4, 200) and out.dtype == torch.bfloat16
    out.float().sum().backward()
    assert net.stem[0].weight.grad is not None and torch.isfinite(net.stem[0].weight.grad).all()


def test_unknown_arch_is_a_one_line_config_error() -> None:
    cfg = ModelConfig(arch="resnet19")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"model\.arch: unknown architecture 'resnet19' \(did you mean"):
        build_model(cfg, 200)
    with pytest.raises(ConfigError, match="num_classes"):
        build_model(ModelConfig(), 0)
