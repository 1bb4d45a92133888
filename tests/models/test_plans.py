"""The torch-free parameter counts `validate` compares teacher and student by are the built
models' counts, for every built-in entry and its options."""

from __future__ import annotations

import pytest

from distillcli.measure import count_params
from distillcli.models.build import build_backbone
from distillcli.models.plans import param_count
from distillcli.models.registry import MODELS

OPTIONS = [{}, {"width": 0.5}, {"width": 1.5}]
CASES = [(name, opts) for name in MODELS.names() if name != "cnn" for opts in OPTIONS]
CASES += [("cifar_resnet", {"depth": 14, "shortcut": "B", "width": 0.75}), ("resnet20", {"shortcut": "B"}),
          ("cnn", {}), ("cnn", {"width": 8, "depth": 5})]


@pytest.mark.parametrize(("name", "options"), CASES)
def test_the_count_is_the_built_model_s(name: str, options: dict) -> None:
    entry = MODELS.get(name)
    assert entry.params is not None, f"{name} has no torch-free count"
    built = build_backbone(name, 7, 3, **options)
    assert param_count(entry.params, {**options, **entry.fixed}, num_classes=7) == count_params(built)


def test_options_the_model_does_not_take_give_no_count() -> None:
    assert param_count(MODELS.get("cnn").params, {"shortcut": "B"}) is None
