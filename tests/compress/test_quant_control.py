"""Accuracy-controlled int8 (quantize: {max_drop: N}): the layers int8 hurts are found and kept
in float, the fewest that bring top-1 within the budget, measured away from the test split."""

from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError

from distillcli.compress.quantization.control import Candidate, rank_layers, search
from distillcli.errors import CompressionError
from distillcli.measure import evaluate
from distillcli.steps import STEPS, StepContext
from distillcli.steps.quantize import QuantizeConfig
from tests.compress.test_quant_step import _trained
from tests.conftest import tiny_synthetic

RANKED = [f"layer{i}" for i in range(20)]


def _fake(needed: int, calls: list[int]):
    """A model whose int8 top-1 recovers once its ``needed`` worst layers are in float."""
    def quantize(layers: list[str]) -> Candidate:
        calls.append(len(layers))
        return Candidate(program=None, int8_layers=set(RANKED) - set(layers),  # type: ignore[arg-type]
                         top1=90.0 if len(layers) >= needed else 60.0)
    return quantize


@pytest.mark.parametrize("needed", [1, 3, 5, 12, 19])
def test_search_keeps_the_fewest_layers_in_float(needed: int) -> None:
    calls: list[int] = []
    quantize = _fake(needed, calls)
    result = search(quantize, RANKED, float_top1=90.2, max_drop=0.5, first=quantize([]))
    assert result.fallback == RANKED[:needed]
    assert result.chosen.top1 == 90.0
    assert len(calls) <= 2 + 2 * 5  # doubling then bisection: logarithmic in the layers, not one per layer
    assert [k for k, _ in result.trials] == calls


def test_search_stops_when_int8_already_meets_the_budget() -> None:
    calls: list[int] = []
    quantize = _fake(0, calls)
    result = search(quantize, RANKED, float_top1=90.2, max_drop=0.5, first=quantize([]))
    assert result.fallback == [] and calls == [0]


def test_search_says_when_the_budget_cannot_be_met() -> None:
    quantize = _fake(len(RANKED), [])
    with pytest.raises(CompressionError, match="even with 19 of 20 layers in float") as err:
        search(quantize, RANKED, float_top1=90.2, max_drop=0.5, first=quantize([]))
    assert "method: qat" in (err.value.hint or "")


def test_max_drop_is_post_training_only() -> None:
    with pytest.raises(ValidationError, match="max_drop applies to methods static and dynamic"):
        QuantizeConfig(method="bf16", max_drop=0.5)


@pytest.fixture(scope="module")
def poisoned():
    """A trained CNN whose second conv reads one channel of huge constant values with zero weights:
    the float model ignores it, but one uint8 range over all the channels rounds the others to 0."""
    data = tiny_synthetic()
    model = _trained(data)
    with torch.no_grad():
        model.module.net.stages[0][1].bias[0] = 1e4
        model.module.net.stages[1][0].weight[:, 0] = 0
    return data, model


def test_rank_layers_puts_the_layer_with_the_bad_input_range_first(poisoned) -> None:
    data, model = poisoned
    names = ["net.stages.0.0", "net.stages.1.0", "net.stages.2.0", "net.classifier"]
    ranked = rank_layers(model.module, names, [images for images, _, _ in data.train])
    assert ranked[0][0] == "net.stages.1.0" and ranked[0][1] > 0.5
    assert all(error < 0.01 for _, error in ranked[1:])


def test_quantize_step_keeps_what_int8_breaks_in_float(poisoned) -> None:
    data, model = poisoned
    ctx = StepContext(device=torch.device("cpu"), data=data)
    float_top1 = evaluate(model.module, data.val, 4)["top1"]
    plain = STEPS.get("quantize").run(model, ctx, QuantizeConfig(calibration_batches=2, compile=False))
    assert evaluate(plain.model.module, data.val, 4)["top1"] < float_top1 - 30  # int8 everywhere collapses

    out = STEPS.get("quantize").run(model, ctx, QuantizeConfig(calibration_batches=2, compile=False, max_drop=1.0))
    info = out.info
    assert info.fallback and info.fallback[0] == "net.stages.1.0"
    assert set(info.fallback) <= set(info.skipped or []) and info.int8_layers == 4 - len(info.fallback)
    assert info.control == "training images that did not calibrate" and info.control_images == 64
    assert info.control_top1 >= info.control_top1_float - 1.0
    assert info.control_trials[0][0] == 0 and len(info.control_trials) <= 4
    assert out.model.precision == "int8"
    assert evaluate(out.model.module, data.val, 4)["top1"] >= float_top1 - 5  # the test split agrees


def test_max_drop_uses_the_held_out_share_when_there_is_one() -> None:
    data = tiny_synthetic(val_split=0.25)
    model = _trained(data)
    ctx = StepContext(device=torch.device("cpu"), data=data)
    out = STEPS.get("quantize").run(model, ctx, QuantizeConfig(calibration_batches=2, compile=False, max_drop=50))
    assert out.info.control == "held out by data.val_split" and out.info.control_images == 32
    assert out.info.fallback == [] and out.info.control_trials == [(0, out.info.control_top1)]


def test_dynamic_int8_is_controlled_on_training_images_from_the_first_batch() -> None:
    data = tiny_synthetic()
    model = _trained(data)
    ctx = StepContext(device=torch.device("cpu"), data=data)
    info = STEPS.get("quantize").run(model, ctx, QuantizeConfig(method="dynamic", compile=False, max_drop=100)).info
    assert info.control == "training images" and info.control_images == 128  # no calibration to keep apart
    assert info.int8_layers == 1 and info.fallback == []  # the classifier, the one Linear layer
