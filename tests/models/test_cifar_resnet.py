"""CIFAR ResNet: exact sizes, shortcut options, akamaster checkpoint keys, ZeroPadShortcut."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from distillcli.errors import OptionError
from distillcli.models.cifar_resnet import CifarResNet, ZeroPadShortcut
from distillcli.models.backbones import build_backbone

BN = ("weight", "bias", "running_mean", "running_var")


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize(("name", "count"), [("resnet20", 269_722), ("resnet56", 853_018)])
def test_param_counts_match_the_paper(name: str, count: int) -> None:
    assert n_params(build_backbone(name, 10)) == count


def akamaster_keys(blocks_per_stage: int) -> list[str]:
    """Keys of an akamaster/pytorch_resnet_cifar10 checkpoint (saved from DataParallel, option A)."""
    keys = ["conv1.weight", *(f"bn1.{s}" for s in BN)]
    for stage in (1, 2, 3):
        for block in range(blocks_per_stage):
            p = f"layer{stage}.{block}."
            for conv, bn in (("conv1", "bn1"), ("conv2", "bn2")):
                keys += [f"{p}{conv}.weight", *(f"{p}{bn}.{s}" for s in BN)]
    keys += ["linear.weight", "linear.bias"]
    return ["module." + k for k in keys]


@pytest.mark.parametrize(("name", "n"), [("resnet20", 3), ("resnet56", 9)])
def test_state_dict_keys_match_akamaster(name: str, n: int) -> None:
    ours = build_backbone(name, 10).state_dict()
    theirs = {k.removeprefix("module.") for k in akamaster_keys(n)}
    derived = {k for k in ours if k.endswith(("num_batches_tracked", "gather_index"))}
    assert theirs == set(ours) - derived
    gathers = {k for k in derived if k.endswith("gather_index")}
    assert gathers == {"layer2.0.shortcut.gather_index", "layer3.0.shortcut.gather_index"}


def test_akamaster_style_checkpoint_loads_with_only_derived_keys_missing() -> None:
    source = build_backbone("resnet20", 10)
    derived = ("num_batches_tracked", "gather_index")
    checkpoint = {k: v for k, v in source.state_dict().items() if not k.endswith(derived)}
    target = build_backbone("resnet20", 10)
    result = target.load_state_dict(checkpoint, strict=False)
    assert not result.unexpected_keys
    assert result.missing_keys and all(k.endswith(derived) for k in result.missing_keys)
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(source.eval()(x), target.eval()(x))


def test_option_a_versus_b() -> None:
    a = set(build_backbone("resnet20", 10, shortcut="A").state_dict())
    b = set(build_backbone("resnet20", 10, shortcut="B").state_dict())
    assert a - b == {"layer2.0.shortcut.gather_index", "layer3.0.shortcut.gather_index"}
    params = ("0.weight", *(f"1.{x}" for x in BN), "1.num_batches_tracked")
    projection = {f"layer{s}.0.shortcut.{k}" for s in (2, 3) for k in params}
    assert b - a == projection
    assert not any(".shortcut." in k for k in a if k.startswith("layer1."))


def test_zero_pad_shortcut_is_parameter_free_with_one_buffer() -> None:
    shortcut = ZeroPadShortcut(16, 32, 2)
    assert not list(shortcut.parameters())
    assert list(shortcut.state_dict()) == ["gather_index"]
    assert shortcut.gather_index.dtype == torch.int64
    assert ZeroPadShortcut.derived_buffers == ("gather_index",)


@pytest.mark.parametrize(("cin", "cout"), [(16, 32), (32, 64), (8, 16)])
def test_zero_pad_shortcut_equals_classic_padding(cin: int, cout: int) -> None:
    x = torch.randn(2, cin, 8, 8)
    p = cout // 4
    expected = F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, p, p))
    assert torch.equal(ZeroPadShortcut(cin, cout, 2)(x), expected)


def test_editing_gather_index_selects_channel_subset() -> None:
    shortcut = ZeroPadShortcut(16, 32, 2)
    x = torch.randn(2, 16, 8, 8)
    full = shortcut(x)
    keep = torch.tensor([0, 3, 8, 9, 20, 23, 24, 31])  # zero and identity positions on both sides
    shortcut.gather_index = shortcut.gather_index[keep]
    assert torch.equal(shortcut(x), full[:, keep])


def test_width_scales_channels() -> None:
    model = build_backbone("resnet20", 10, width=0.5)
    assert (model.conv1.out_channels, model.layer2[0].conv1.out_channels, model.linear.in_features) == (8, 16, 32)
    assert model.layer2[0].shortcut.gather_index.tolist()[:4] == [8, 8, 8, 8]


@pytest.mark.parametrize("depth", [2, 7, 21, 100])
def test_bad_depth(depth: int) -> None:
    with pytest.raises(OptionError) as err:
        CifarResNet(depth)
    assert "6n+2" in err.value.message
