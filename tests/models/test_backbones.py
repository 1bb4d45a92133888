"""Every registered model builds, runs forward and backward; names and options are checked."""

from __future__ import annotations

import pytest
import torch

from distillcli.errors import OptionError, UnknownNameError
from distillcli.models.backbones import build_backbone
from distillcli.models.registry import MODELS

list_models = MODELS.names


@pytest.mark.parametrize("name", list_models())
@pytest.mark.parametrize(("num_classes", "in_channels"), [(10, 3), (7, 1)])
def test_builds_forwards_and_backwards(name: str, num_classes: int, in_channels: int) -> None:
    model = build_backbone(name, num_classes, in_channels)
    out = model(torch.randn(2, in_channels, 32, 32))
    assert out.shape == (2, num_classes)
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_list_models_covers_the_zoo_and_filters() -> None:
    names = list_models()
    for expected in ("resnet8", "resnet20", "resnet56", "resnet110", "cifar_resnet", "vgg16_bn", "mobilenetv2", "cnn"):
        assert expected in names
    assert list_models("vgg*") == ["vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn"]


def test_unknown_model_suggests_closest() -> None:
    with pytest.raises(UnknownNameError) as err:
        build_backbone("resnt20", 10)
    assert "did you mean 'resnet20'" in str(err.value)


def test_torchvision_name_without_prefix_suggests_prefix() -> None:
    with pytest.raises(UnknownNameError) as err:
        build_backbone("resnet18", 10)
    assert "torchvision:resnet18" in str(err.value)


def test_unknown_option_names_it_and_lists_valid_ones() -> None:
    with pytest.raises(OptionError) as err:
        build_backbone("resnet20", 10, widht=0.5)
    assert "'widht'" in err.value.message
    assert "width" in str(err.value.hint) and "shortcut" in str(err.value.hint)


def test_options_reach_the_factory() -> None:
    model = build_backbone("cnn", 10, width=8, depth=2)
    assert model.classifier.in_features == 16
    assert build_backbone("cifar_resnet", 10, depth=8, width=0.5).linear.in_features == 32


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("resnet20", {"width": 0}),
        ("resnet20", {"shortcut": "C"}),
        ("cifar_resnet", {"depth": 21}),
        ("vgg11_bn", {"width": -1.0}),
        ("mobilenetv2", {"width": "wide"}),
        ("cnn", {"depth": 0}),
    ],
)
def test_bad_option_values_raise_option_error(name: str, options: dict) -> None:
    with pytest.raises(OptionError) as err:
        build_backbone(name, 10, **options)
    assert err.value.hint


def test_bad_class_count_raises_option_error() -> None:
    with pytest.raises(OptionError):
        build_backbone("cnn", 0)


def test_vgg16_bn_size_and_small_inputs() -> None:
    model = build_backbone("vgg16_bn", 10)
    assert 14.6e6 < sum(p.numel() for p in model.parameters()) < 14.8e6
    assert model.eval()(torch.randn(1, 3, 16, 16)).shape == (1, 10)


def test_mobilenetv2_width_rounds_to_multiples_of_8() -> None:
    model = build_backbone("mobilenetv2", 10, width=0.35)
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert all(c.out_channels % 8 == 0 for c in convs)
    depthwise = [c for c in convs if c.groups > 1]
    assert depthwise and all(c.groups == c.in_channels == c.out_channels for c in depthwise)
