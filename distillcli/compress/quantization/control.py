"""Accuracy-controlled int8 (``quantize: {max_drop: 0.5}``): keep in float the fewest layers, among
those int8 hurts most, that bring top-1 on control images within ``max_drop`` points of the float
model; what NNCF's accuracy-aware quantization and AIMET's AutoQuant offer.

Layers are ranked by their own int8 error: each layer's output with its weight int8 per output
channel and its input uint8 over the range the calibration images give (7-bit with
``reduce_range``), against its float output, one layer at a time with the rest of the model in
float. The ranking is a cheap proxy (two passes over a few batches, no quantized model); every
candidate it proposes is then a real quantization, calibrated and converted like the result and
measured on the control images. The number kept in float is searched 1, 2, 4, ... and then
bisected, so a model needs a handful of quantizations, not one per layer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable

import torch
from torch import Tensor, nn
from torch.func import functional_call

from distillcli.errors import CompressionError


@dataclass
class Candidate:
    """One quantization: the int8 program, the layers it holds in int8, its top-1 on the control images."""

    program: torch.export.ExportedProgram
    int8_layers: set[str]
    top1: float


@dataclass
class Controlled:
    chosen: Candidate
    fallback: list[str]  # the layers the search kept in float, worst first
    trials: list[tuple[int, float]] = field(default_factory=list)  # (layers in float, control top-1)


def _fake_int8_weight(weight: Tensor) -> Tensor:
    """Symmetric int8 per output channel (dim 0), as the x86 and ARM quantizers store weights."""
    scale = weight.abs().flatten(1).amax(1).clamp(min=1e-12) / 127
    scale = scale.view(-1, *([1] * (weight.dim() - 1)))
    return torch.clamp(torch.round(weight / scale), -128, 127) * scale


def _fake_uint(x: Tensor, low: float, high: float, bits: int) -> Tensor:
    """Affine per-tensor quantization of ``x`` over [low, high] (widened to hold 0) with ``bits`` bits."""
    low, high = min(low, 0.0), max(high, 0.0)
    levels = (1 << bits) - 1
    scale = max(high - low, 1e-12) / levels
    zero = round(-low / scale)
    return (torch.clamp(torch.round(x / scale) + zero, 0, levels) - zero) * scale


@torch.no_grad()
def rank_layers(model: nn.Module, names: Iterable[str], batches: list[Tensor], bits: int = 8,
                dynamic: bool = False) -> list[tuple[str, float]]:
    """``names`` with each layer's own int8 error (squared error over the squared float output),
    worst first. ``dynamic``: the input range is each batch's own, as dynamic int8 takes it."""
    layers = {name: model.get_submodule(name) for name in names}
    ranges: dict[str, tuple[float, float]] = {}
    errors = {name: [0.0, 0.0] for name in layers}
    busy = False

    def observe(name: str) -> Callable[..., None]:
        def hook(module: nn.Module, inputs: tuple, output: Tensor) -> None:
            low, high = ranges.get(name, (float("inf"), float("-inf")))
            ranges[name] = (min(low, float(inputs[0].min())), max(high, float(inputs[0].max())))
        return hook

    def compare(name: str) -> Callable[..., None]:
        def hook(module: nn.Module, inputs: tuple, output: Tensor) -> None:
            nonlocal busy
            if busy or len(inputs) != 1 or not isinstance(output, Tensor):
                return
            x = inputs[0]
            low, high = (float(x.min()), float(x.max())) if dynamic else ranges[name]
            busy = True  # the call below runs this module's hooks again
            try:
                quantized = functional_call(module, {"weight": _fake_int8_weight(module.weight)},
                                            (_fake_uint(x, low, high, bits),))
            finally:
                busy = False
            errors[name][0] += float((output.float() - quantized.float()).pow(2).sum())
            errors[name][1] += float(output.float().pow(2).sum())
        return hook

    model.eval()
    for make in ([] if dynamic else [observe]) + [compare]:
        handles = [layer.register_forward_hook(make(name)) for name, layer in layers.items()]
        try:
            for images in batches:
                model(images)
        finally:
            for handle in handles:
                handle.remove()
    scored = [(name, err / total if total > 0 else 0.0) for name, (err, total) in errors.items()]
    return sorted(scored, key=lambda item: -item[1])


def search(quantize: Callable[[list[str]], Candidate], ranked: list[str], float_top1: float,
           max_drop: float, first: Candidate, note: Callable[[str], None] = lambda _: None) -> Controlled:
    """The fewest of ``ranked`` (worst first) kept in float for which top-1 on the control images is
    within ``max_drop`` points of ``float_top1``. ``first`` is the quantization with none kept;
    ``quantize(layers)`` makes the one with ``layers`` in float. Raises CompressionError when even all
    but one in float is not enough."""
    trials = [(0, first.top1)]
    if float_top1 - first.top1 <= max_drop:
        return Controlled(first, [], trials)
    if len(ranked) < 2:
        raise CompressionError(
            f"int8 loses {float_top1 - first.top1:.2f} points of top-1 on the control images, more than max_drop "
            f"{max_drop:g}, and the model has no other layer to keep in float",
            "raise max_drop, train with method: qat, or use method: bf16")

    def attempt(k: int) -> Candidate:
        candidate = quantize(ranked[:k])
        trials.append((k, candidate.top1))
        note(f"int8 with {k} layer(s) in float: control top-1 {candidate.top1:.2f} (float {float_top1:.2f})")
        return candidate

    failed, passed, best, k = 0, None, None, 1
    while passed is None:
        candidate = attempt(k)
        if float_top1 - candidate.top1 <= max_drop:
            passed, best = k, candidate
        elif k == len(ranked) - 1:
            top = max(top1 for _, top1 in trials)
            raise CompressionError(
                f"int8 stays more than max_drop {max_drop:g} points below the float model on the control images "
                f"even with {k} of {len(ranked)} layers in float (best: {float_top1 - top:.2f} points below)",
                "raise max_drop, train with method: qat, or use method: bf16")
        else:
            failed, k = k, min(2 * k, len(ranked) - 1)
    while passed - failed > 1:
        k = (failed + passed) // 2
        candidate = attempt(k)
        if float_top1 - candidate.top1 <= max_drop:
            passed, best = k, candidate
        else:
            failed = k
    assert best is not None
    return Controlled(best, ranked[:passed], trials)
