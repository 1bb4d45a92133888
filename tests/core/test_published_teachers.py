"""The pretrained CIFAR-10 teachers in ../shared evaluate to their published accuracy."""

from __future__ import annotations

import pytest

from distillcli.engine.models import build_from_spec
from distillcli.data import load_data
from distillcli.measure import evaluate
from distillcli.recipe import load_recipe
from tests.conftest import ROOT, SHARED

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not (SHARED / "weights").exists() or not (SHARED / "data").exists(),
                                 reason="../shared (CIFAR-10 and pretrained teachers) not present")]


@pytest.mark.parametrize("arch,file,published", [
    ("resnet56", "resnet56-4bfd9763.th", 93.39),
    ("resnet20", "resnet20-12fca82f.th", 91.73),
])
def test_teacher_reaches_published_top1(arch, file, published):
    weights = SHARED / "weights/cifar10/akamaster_pytorch_resnet_cifar10" / file
    recipe = load_recipe(ROOT / "recipes/resnet56_resnet20_cifar10.yaml",
                         [f"data.root={SHARED / 'data/cifar10'}", f"teacher.checkpoint={weights}",
                          f"teacher.arch={arch}", "device=cpu"])
    data = load_data(recipe.data, seed=0, channels_last=True)
    teacher = build_from_spec(recipe.teacher, data)
    result = evaluate(teacher.module, data.val, data.num_classes)
    assert result["samples"] == 10_000
    assert result["top1"] == pytest.approx(published, abs=0.02)
