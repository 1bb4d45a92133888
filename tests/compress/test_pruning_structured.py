"""Channel pruning: every registry model, residual consistency, the option-A shortcut rule."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from distillcli.compress.pruning import ChannelPruner, kept_channels, nearest_ratio, search_ratio
from distillcli.compress.pruning.shortcut_rule import ZeroPadShortcutPruner
from distillcli.errors import CompressionError, OptionError
from distillcli.measure import count_macs
from distillcli.models.build import build_model
from distillcli.models.cifar_resnet import ZeroPadShortcut
from distillcli.models.handle import ArchSpec
from distillcli.models.registry import MODELS

list_models = MODELS.names

SHAPE = (3, 16, 16)
# Small variants keep tracing and forward passes fast; depth is what the graph must get right.
SMALL = {"cnn": {"width": 8}, "mobilenetv2": {"width": 0.5}, "cifar_resnet": {"depth": 14}}


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: one thread is faster and immune to load


def make(name: str, **kwargs) -> nn.Module:
    torch.manual_seed(0)
    spec = ArchSpec(name, 10, 3, [0.5] * 3, [0.25] * 3, kwargs)
    return build_model(spec).eval()


def randomise_bn(model: nn.Module) -> None:
    """Non-trivial BatchNorm statistics, so zeroed / pruned channels would show in the output."""
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.weight.data = torch.rand(m.num_features, generator=g) + 0.5
            m.bias.data = torch.randn(m.num_features, generator=g) * 0.1
            m.running_mean = torch.randn(m.num_features, generator=g) * 0.1
            m.running_var = torch.rand(m.num_features, generator=g) + 0.5


@pytest.mark.parametrize("name", list_models())
def test_every_registry_model_prunes_and_runs(name: str) -> None:
    model = make(name, **SMALL.get(name, {}))
    x = torch.rand(2, *SHAPE)
    base = count_macs(model, SHAPE)
    pruner = ChannelPruner(model, SHAPE)
    assert pruner.groups
    for ratio in (0.3, 0.6):
        plan = pruner.plan(ratio)
        pruned = pruner.apply(plan).eval()
        assert pruned(x).shape == (2, 10)
        reduction = base / pruner.macs(plan)
        ideal = 1 / (1 - ratio) ** 2  # every conv loses `ratio` of its inputs and outputs
        assert ideal ** 0.6 < reduction < ideal * 1.1, (name, ratio, reduction)
    assert model(x).shape == (2, 10) and count_macs(model, SHAPE) == base  # the source is untouched


@pytest.mark.parametrize("depth", [20, 56])
def test_resnets_forward_at_several_ratios(depth: int) -> None:
    model = make(f"resnet{depth}")
    pruner = ChannelPruner(model, (3, 32, 32))
    for ratio in (0.1, 0.25, 0.5, 0.75, 0.9):
        pruned = pruner.apply(pruner.plan(ratio)).eval()
        assert pruned(torch.rand(1, 3, 32, 32)).shape == (1, 10)


def _zero_residual_channels(model: nn.Module, option: str) -> dict[str, list[int]]:
    """Make some residual channels of all three stages (and some inner channels) exactly zero
    everywhere; returns the plan that removes exactly them."""
    net = model.net
    stages = [net.layer1, net.layer2, net.layer3]
    dead: list[list[int]] = []
    for s, stage in enumerate(stages):
        width = stage[0].bn2.num_features
        chosen = {1, 4, width - 1}
        shortcut = stage[0].shortcut
        if isinstance(shortcut, ZeroPadShortcut):  # channels fed only by zeros or by dead inputs
            zero_in = set(dead[-1]) | {shortcut.in_channels}
            chosen |= {j for j, i in enumerate(shortcut.gather_index.tolist()) if i in zero_in}
        chosen_list = sorted(chosen)
        writers = [block.bn2 for block in stage] + ([net.bn1] if s == 0 else [])
        if isinstance(shortcut, nn.Sequential):
            writers.append(shortcut[1])
        for bn in writers:
            bn.weight.data[chosen_list] = 0
            bn.bias.data[chosen_list] = 0
        dead.append(chosen_list)
    inner = stages[1][1].bn1
    inner.weight.data[[0, 2]] = 0
    inner.bias.data[[0, 2]] = 0
    plan_names = {"net.conv1": dead[0], "net.layer2.0.conv2": dead[1], "net.layer3.0.conv2": dead[2],
                  "net.layer2.1.conv1": [0, 2]}
    return plan_names


@pytest.mark.parametrize("option", ["A", "B"])
def test_removing_dead_channels_leaves_outputs_identical(option: str) -> None:
    model = make("resnet20", shortcut=option)
    randomise_bn(model)
    plan = _zero_residual_channels(model, option)
    x = torch.rand(4, 3, 32, 32)
    expected = model(x)
    pruner = ChannelPruner(model, (3, 32, 32))
    assert set(plan) <= set(pruner.group_names())
    pruned = pruner.apply(plan).eval()
    assert pruned.net.layer3[0].bn2.num_features == 64 - len(plan["net.layer3.0.conv2"])
    assert pruned.net.linear.in_features == 64 - len(plan["net.layer3.0.conv2"])
    torch.testing.assert_close(pruned(x), expected, rtol=1e-5, atol=1e-5)


def test_pruning_live_residual_channels_changes_outputs_consistently() -> None:
    """Stage residual widths can differ freely: the shortcut rule keeps every add consistent."""
    model = make("resnet20")
    pruner = ChannelPruner(model, (3, 32, 32))
    plan = {"net.conv1": [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], "net.layer2.0.conv2": list(range(0, 32, 2)),
            "net.layer3.0.conv2": list(range(40))}
    pruned = pruner.apply(plan).eval()
    assert pruned(torch.rand(2, 3, 32, 32)).shape == (2, 10)
    short2, short3 = pruned.net.layer2[0].shortcut, pruned.net.layer3[0].shortcut
    assert (short2.in_channels, short2.gather_index.numel()) == (6, 16)
    assert (short3.in_channels, short3.gather_index.numel()) == (16, 24)  # fewer outputs than inputs


def test_shortcut_rule_matches_selecting_from_the_full_output() -> None:
    shortcut = ZeroPadShortcut(16, 32, 2)
    x = torch.randn(2, 16, 8, 8)
    full = shortcut(x)
    rule = ZeroPadShortcutPruner()
    rule.prune_out_channels(shortcut, [0, 1, 9, 30])
    kept_out = [j for j in range(32) if j not in (0, 1, 9, 30)]
    torch.testing.assert_close(shortcut(x), full[:, kept_out])
    rule.prune_in_channels(shortcut, [1, 5])  # inputs 1 and 5 are gone: their outputs become zero
    kept_in = [i for i in range(16) if i not in (1, 5)]
    expected = full[:, kept_out].clone()
    for pos, j in enumerate(kept_out):
        if 8 + 1 == j or 8 + 5 == j:
            expected[:, pos] = 0
    assert shortcut.in_channels == 14 and rule.get_in_channels(shortcut) == 14
    assert rule.get_out_channels(shortcut) == 28
    torch.testing.assert_close(shortcut(x[:, kept_in]), expected)


def test_mobilenet_depthwise_groups_follow_their_channels() -> None:
    model = make("mobilenetv2", width=0.5)
    pruner = ChannelPruner(model, SHAPE)
    pruned = pruner.apply(pruner.plan(0.5))
    for m in pruned.modules():
        if isinstance(m, nn.Conv2d) and m.groups > 1:
            assert m.groups == m.in_channels == m.out_channels == m.weight.shape[0]


def test_round_to_ignore_and_overrides() -> None:
    model = make("vgg11_bn")
    pruner = ChannelPruner(model, SHAPE, ignore=["stem"])
    assert "net.features.0.0" not in pruner.group_names()
    plan = pruner.plan(0.3, round_to=8, overrides={"net.features.7.*": 0.0, "net.features.1.0": 0.75})
    pruned = pruner.apply(plan)
    convs = {n: m for n, m in pruned.named_modules() if isinstance(m, nn.Conv2d)}
    assert convs["net.features.0.0"].out_channels == 64
    assert convs["net.features.7.0"].out_channels == 512
    assert convs["net.features.1.0"].out_channels == 32
    assert all(m.out_channels % 8 == 0 for m in convs.values())
    with pytest.raises(OptionError, match="matches no"):
        pruner.plan(0.3, overrides={"net.nothing.*": 0.5})
    with pytest.raises(OptionError, match="matches no"):
        ChannelPruner(model, SHAPE, ignore=["classifier.typo"])


def test_kept_channels_rounding() -> None:
    assert kept_channels(64, 0.5) == 32
    assert kept_channels(64, 0.45, round_to=8) == 32  # 35.2 -> nearest multiple
    assert kept_channels(12, 0.1, round_to=8) == 8  # never above the layer, never zero
    assert kept_channels(6, 0.5, round_to=8) == 6  # narrower than round_to: untouched
    # a multiple above 8 halves (to 8 at least) for layers narrower than eight times it
    assert kept_channels(16, 0.5, round_to=16) == 8 and kept_channels(64, 0.4, round_to=16) == 40
    assert kept_channels(128, 0.45, round_to=16) == 64  # wide enough for 16 (with 8: 72)
    assert kept_channels(8, 0.5, round_to=16) == 8  # never halved below 8
    # narrowest 16 (int8 on AMX): 16 is not halved, so a 16-channel layer stays whole, a 32 one keeps 16 or 32
    assert kept_channels(16, 0.5, round_to=16, narrowest=16) == 16
    assert kept_channels(32, 0.6, round_to=16, narrowest=16) == 16 and kept_channels(32, 0.2, 16, 16) == 32
    assert kept_channels(3, 0.99) == 1


def test_global_scope_respects_the_layer_cap() -> None:
    model = make("resnet20")
    pruner = ChannelPruner(model, (3, 32, 32), importance="l2")
    plan = pruner.plan(0.5, scope="global", max_ratio=0.6)
    counts = pruner.channel_counts(plan)
    assert abs(1 - sum(a for _, a in counts.values()) / sum(b for b, _ in counts.values()) - 0.5) < 0.02
    assert len({a / b for b, a in counts.values()}) > 2  # ranked together: layers lose different shares
    for name, (before, after) in counts.items():
        assert after >= before - int(before * 0.6 + 0.5), name


@pytest.mark.parametrize("importance", ["bn_scale", "taylor"])
def test_other_importances(importance: str) -> None:
    model = make("resnet8")
    randomise_bn(model)
    if importance == "taylor":
        torch.nn.functional.cross_entropy(model(torch.rand(8, *SHAPE)), torch.arange(8)).backward()
    pruner = ChannelPruner(model, SHAPE, importance=importance)
    assert all(torch.isfinite(g.scores).all() for g in pruner.groups)
    assert pruner.apply(pruner.plan(0.5)).eval()(torch.rand(1, *SHAPE)).shape == (1, 10)


def test_training_mode_is_restored() -> None:
    model = make("resnet8").train()
    ChannelPruner(model, SHAPE)
    assert model.training and all(m.training for m in model.modules())


def test_mac_target_search_hits_the_target() -> None:
    model = make("resnet20")
    pruner = ChannelPruner(model, (3, 32, 32))
    base = count_macs(model, (3, 32, 32))

    def reduction(r: float) -> float:
        return base / pruner.macs(pruner.plan(r))

    ratio = search_ratio(reduction, 2.0, 0.9)
    assert 2.0 <= reduction(ratio) < 2.1
    assert base / count_macs(pruner.apply(pruner.plan(ratio)), (3, 32, 32)) == reduction(ratio)  # meta count is exact
    with pytest.raises(CompressionError, match="cannot reach"):
        search_ratio(reduction, 1000.0, 0.9)


def test_nearest_ratio_takes_the_plan_nearer_the_target_by_ratio() -> None:
    def steps(r: float) -> float:  # what rounding makes of a reduction: no plan between 1.9x and 2.3x
        return 1.0 if r < 0.3 else 1.9 if r < 0.6 else 2.3

    ratio, other = nearest_ratio(steps, 2.0, 0.9)  # 2.0 / 1.9 is nearer than 2.3 / 2.0
    assert steps(ratio) == 1.9 and other == 2.3
    ratio, other = nearest_ratio(steps, 2.2, 0.9)
    assert steps(ratio) == 2.3 and other == 1.9
    ratio, other = nearest_ratio(steps, 1.2, 0.9)  # short of it, nothing is pruned: not a plan
    assert steps(ratio) == 1.9 and other is None
