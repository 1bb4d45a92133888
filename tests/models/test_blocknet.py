"""Truncation keeps the first K feature blocks and adds a fresh classifier."""

from __future__ import annotations

import pytest
import torch

from distillcli.errors import OptionError
from distillcli.models.blocknet import BlockNet, TruncatedNet
from distillcli.models.backbones import build_backbone

# (model, options, number of feature blocks)
CASES = [
    ("resnet20", {}, 9),
    ("resnet8", {"shortcut": "B"}, 3),
    ("vgg11_bn", {"width": 0.25}, 8),
    ("mobilenetv2", {"width": 0.5}, 17),
    ("cnn", {}, 3),
]


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize(("name", "options", "blocks"), CASES)
def test_truncation_shapes_and_sizes(name: str, options: dict, blocks: int) -> None:
    teacher = build_backbone(name, 10, **options)
    assert isinstance(teacher, BlockNet) and len(teacher.feature_blocks()) == blocks
    x = torch.randn(2, 3, 32, 32)
    sizes = []
    for k in range(1, blocks + 1):
        student = teacher.truncated(k, 5)
        assert isinstance(student, TruncatedNet) and len(student.blocks) == k
        assert student(x).shape == (2, 5)
        sizes.append(n_params(student))
    assert sizes == sorted(sizes) and sizes[-1] < n_params(teacher)


@pytest.mark.parametrize(("name", "options", "blocks"), CASES)
def test_truncation_is_deterministic_and_copies_weights(name: str, options: dict, blocks: int) -> None:
    k = max(1, blocks // 2)
    first = build_backbone(name, 10, **options)
    second = build_backbone(name, 10, **options)
    a, b = first.truncated(k, 7).state_dict(), second.truncated(k, 7).state_dict()
    assert [(key, v.shape) for key, v in a.items()] == [(key, v.shape) for key, v in b.items()]
    first_block = first.feature_blocks()[0].state_dict()
    for key, value in first_block.items():
        assert torch.equal(a[f"blocks.0.{key}"], value)


def test_truncated_model_is_independent_of_the_teacher() -> None:
    teacher = build_backbone("resnet20", 10)
    student = teacher.truncated(2, 10)
    assert torch.equal(student.stem[0].weight, teacher.conv1.weight)
    with torch.no_grad():
        teacher.conv1.weight.add_(1.0)
    assert not torch.equal(student.stem[0].weight, teacher.conv1.weight)


def test_truncated_model_can_be_truncated_again() -> None:
    student = build_backbone("cnn", 10).truncated(2, 10)
    assert student.truncated(1, 3)(torch.randn(1, 3, 32, 32)).shape == (1, 3)


@pytest.mark.parametrize("k", [0, 10, -1, 2.5])
def test_keep_blocks_out_of_range(k: int) -> None:
    with pytest.raises(OptionError) as err:
        build_backbone("resnet20", 10).truncated(k, 10)
    assert "1 to 9" in err.value.message
