"""Attention-head pruning: timm's Attention loses whole heads, stays exact, and reloads from a model file."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from timm.layers import Attention
from torch import nn

from distillcli.compress.pruning import ChannelPruner
from distillcli.compress.pruning.heads import prune_heads
from distillcli.errors import CompressionError, ModelFileError
from distillcli.modelfile import file_header, load_model, save_model
from distillcli.models.build import build_model
from distillcli.models.handle import ArchSpec, ModelHandle
from distillcli.models.structure import apply_structure, capture_structure, is_attention
from tests.conftest import tiny_synthetic

pytestmark = pytest.mark.usefixtures("one_thread")
SHAPE = (3, 32, 32)
SPEC = ArchSpec("timm:deit_tiny_patch16_224", 4, 3, [0.5] * 3, [0.25] * 3, {"img_size": 32, "depth": 2})
ATTENTIONS = ("net.blocks.0.attn", "net.blocks.1.attn")


@pytest.fixture(scope="module")
def vit() -> nn.Module:
    torch.manual_seed(0)
    return build_model(SPEC).eval()


def zero_heads(model: nn.Module, plan: dict[str, list[int]]) -> nn.Module:
    """The model with the planned heads' q, k, v rows and proj columns zeroed: what removing them must equal."""
    zeroed = copy.deepcopy(model)
    for name in ATTENTIONS:
        attn = zeroed.get_submodule(name)
        width, dim = attn.attn_dim, attn.head_dim
        with torch.no_grad():
            for h in plan[name]:
                cols = slice(h * dim, (h + 1) * dim)
                attn.proj.weight[:, cols] = 0
                for j in range(3):
                    rows = slice(j * width + h * dim, j * width + (h + 1) * dim)
                    attn.qkv.weight[rows] = 0
                    attn.qkv.bias[rows] = 0
    return zeroed


def test_a_third_of_the_heads_go_exactly(vit: nn.Module) -> None:
    pruner = ChannelPruner(vit, SHAPE)
    heads = {g.name for g in pruner.groups if g.heads}
    assert heads == set(ATTENTIONS)
    plan = pruner.plan(1 / 3, round_to=8)  # round_to leaves head counts alone
    pruned = pruner.apply(plan).eval()
    for name in ATTENTIONS:
        attn = pruned.get_submodule(name)
        assert (attn.num_heads, attn.attn_dim) == (2, 128) and len(plan[name]) == 1
        assert (attn.qkv.weight.shape, attn.qkv.bias.shape, attn.proj.weight.shape) == ((384, 192), (384,), (192, 128))
        assert vit.get_submodule(name).num_heads == 3  # the source is untouched
    assert pruned.net.blocks[0].mlp.fc1.out_features < 768  # the MLPs are pruned as before
    assert pruner.channel_counts(plan)["net.blocks.0.attn"] == [3, 2]
    heads_only = {k: plan[k] for k in ATTENTIONS}
    assert pruner.macs(plan) < pruner.macs(heads_only) < pruner.macs({})
    assert pruner.params(plan) < pruner.params(heads_only) < pruner.params({})
    x = torch.rand(2, *SHAPE)
    with torch.no_grad():
        reference = zero_heads(vit, plan)(x)
        assert (pruner.apply(heads_only).eval()(x) - reference).abs().max() < 1e-5
        assert pruned(x).shape == (2, 4)
        assert (vit(x) - reference).abs().max() > 1e-4  # the removed heads did contribute


def test_overrides_scope_ignore_and_criteria(vit: nn.Module) -> None:
    pruner = ChannelPruner(vit, SHAPE)
    plan = pruner.plan(0.5, overrides={"net.blocks.0.attn": 0.0, "net.blocks.1.attn.qkv": 0.9})
    assert "net.blocks.0.attn" not in plan and len(plan["net.blocks.1.attn"]) == 2  # at least one head stays
    assert pruner.plan(0.3, scope="global").keys() >= {"net.blocks.0.mlp.fc1"}
    ignored = ChannelPruner(vit, SHAPE, ignore=["net.blocks.1.attn.*"])
    assert {g.name for g in ignored.groups if g.heads} == {"net.blocks.0.attn"}
    assert not [g for g in ChannelPruner(vit, SHAPE, "bn_scale").groups if g.heads]  # no BatchNorm to read
    graded = copy.deepcopy(vit)
    graded(torch.rand(2, *SHAPE)).sum().backward()
    assert {g.name for g in ChannelPruner(graded, SHAPE, "taylor").groups if g.heads} == set(ATTENTIONS)
    with pytest.raises(CompressionError, match="at least one head"):
        pruner.apply({"net.blocks.0.attn": [0, 1, 2]})


def test_gated_attention_with_a_scale_norm() -> None:
    torch.manual_seed(0)
    normed = Attention(32, num_heads=4, qkv_bias=True, gated=True, scale_norm=True, norm_layer=nn.LayerNorm)
    assert is_attention(normed) and not is_attention(nn.MultiheadAttention(32, 4))  # torchvision's stays whole
    prune_heads(normed, [1, 3])
    assert (normed.num_heads, normed.attn_dim, normed.gate.out_features) == (2, 16, 16)
    assert normed.norm.normalized_shape == (16,) and normed.norm.weight.shape == (16,)
    x = torch.rand(2, 5, 32)
    assert normed.eval()(x).shape == (2, 5, 32)
    gated = Attention(32, num_heads=4, gated=True).eval()
    zeroed = copy.deepcopy(gated)
    with torch.no_grad():
        zeroed.proj.weight[:, 8:16] = 0  # head 1's output no longer reaches proj
        prune_heads(gated, [1])
        assert (gated(x) - zeroed(x)).abs().max() < 1e-5


def test_the_pruned_file_reloads_with_its_head_count(vit: nn.Module, tmp_path: Path) -> None:
    pruner = ChannelPruner(vit, SHAPE)
    pruned = pruner.apply(pruner.plan(1 / 3)).eval()
    data = tiny_synthetic(image_size=32, train_size=8, val_size=8)
    handle = ModelHandle(pruned, SPEC)
    header = file_header(handle, class_names=data.class_names, input_shape=data.input_shape, data=data.spec)
    loaded = load_model(save_model(tmp_path / "pruned.pt", handle, header)).handle.module
    assert [loaded.get_submodule(n).num_heads for n in ATTENTIONS] == [2, 2]
    x = torch.rand(2, *SHAPE)
    with torch.no_grad():
        assert torch.equal(loaded(x), pruned(x))


def test_recorded_head_counts_are_checked(vit: nn.Module) -> None:
    structure = capture_structure(vit)
    assert structure["net.blocks.0.attn"]["args"] == {"num_heads": 3, "attn_dim": 192}
    older = {k: v for k, v in structure.items() if v["type"] != "attention_heads"}  # files before head pruning
    apply_structure(build_model(SPEC), older)
    structure["net.blocks.0.attn"]["args"] = {"num_heads": 2, "attn_dim": 192}
    with pytest.raises(ModelFileError, match="do not agree"):
        apply_structure(build_model(SPEC), structure)
