"""Unstructured magnitude pruning of convolution and linear weights.

Weights stay dense tensors with zeros in them: smaller when stored sparse, but no faster on
dense CPU/GPU kernels. During fine-tuning the pruner is a Trainer hook that keeps pruned
weights at zero (their gradients are masked and the weights re-zeroed after every optimiser
step); once training ends the zeros are simply part of the weights.
"""

from __future__ import annotations

import math
from typing import Literal, Mapping, Sequence

import torch
from torch import Tensor, nn

from distillcli.compress.pruning.schedules import AgpSchedule
from distillcli.compress.pruning.structured import STEM, match_layers
from distillcli.errors import OptionError

NOTE = ("unstructured sparsity makes the weights compressible (see sparse_bytes) but not faster: "
        "dense CPU/GPU kernels multiply the zeros too; use method: channel for speed")


class MagnitudePruner:
    """Masks the smallest-magnitude weights of every Conv2d / Linear not ignored.

    ``layer`` scope removes the same fraction from each layer; ``global`` ranks all weights
    together. Layers matching ``overrides`` (wildcards on module names) use their own
    fraction, scaled along with the schedule.
    """

    def __init__(self, model: nn.Module, sparsity: float, scope: Literal["layer", "global"] = "layer",
                 ignore: Sequence[str] = (), overrides: Mapping[str, float] | None = None) -> None:
        layers = {n: m for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))}
        skipped: set[str] = set()
        for pattern in ignore:
            names = [next(iter(layers))] if pattern == STEM and layers else match_layers(list(layers), pattern)
            if not names:
                raise OptionError(f"ignore pattern {pattern!r} matches no convolution or linear layer",
                                  f"layers are named like {', '.join(list(layers)[:3])} ...")
            skipped.update(names)
        self.weights: dict[str, nn.Parameter] = {n: m.weight for n, m in layers.items() if n not in skipped}
        self.fixed: dict[str, float] = {}
        for pattern, ratio in (overrides or {}).items():
            names = match_layers(list(self.weights), pattern)
            if not names:
                raise OptionError(f"override pattern {pattern!r} matches no prunable layer",
                                  f"layers are named like {', '.join(list(self.weights)[:3])} ...")
            self.fixed.update(dict.fromkeys(names, ratio))
        self.target, self.scope = sparsity, scope
        self.masks: dict[str, Tensor] = {}
        self.schedule: AgpSchedule | None = None  # set for gradual pruning during fine-tuning

    @torch.no_grad()
    def prune_to(self, sparsity: float) -> None:
        """Recompute the masks for ``sparsity`` (on the way to ``target``; exactly round(s * n)
        zeros per ranked set) and apply them. Weights already at zero rank lowest, so masks only grow."""
        scale = sparsity / self.target
        free = [n for n in self.weights if n not in self.fixed]
        for name in self.fixed:
            self.masks[name] = _keep_mask(self.weights[name].abs(), self.fixed[name] * scale)
        if self.scope == "layer":
            for name in free:
                self.masks[name] = _keep_mask(self.weights[name].abs(), sparsity)
        elif free:
            flat = _keep_mask(torch.cat([self.weights[n].abs().flatten() for n in free]), sparsity)
            for name, part in zip(free, flat.split([self.weights[n].numel() for n in free])):
                self.masks[name] = part.view_as(self.weights[name])
        self.apply()

    @torch.no_grad()
    def apply(self) -> None:
        for name, mask in self.masks.items():
            self.weights[name].mul_(mask)

    # Trainer hooks -------------------------------------------------------------
    def after_backward(self, model: nn.Module) -> None:
        for name, mask in self.masks.items():
            grad = self.weights[name].grad
            if grad is not None:
                grad.mul_(mask)

    def after_step(self, model: nn.Module, step: int) -> None:
        if self.schedule is not None and self.schedule.is_update(step):
            self.prune_to(self.schedule.sparsity(step))
        else:
            self.apply()

    # Checkpoints -------------------------------------------------------------
    def state_dict(self) -> dict[str, Tensor]:
        return {name: mask.detach().to("cpu", copy=True) for name, mask in self.masks.items()}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        self.masks = {name: mask.to(self.weights[name].device) for name, mask in state.items()}

    # Report ------------------------------------------------------------------
    def sparsity(self) -> float:
        """True fraction of zeros among the managed weights."""
        total = sum(w.numel() for w in self.weights.values())
        zeros = sum(int((w == 0).sum()) for w in self.weights.values())
        return zeros / total if total else 0.0


def _keep_mask(magnitude: Tensor, sparsity: float) -> Tensor:
    """1 for kept, 0 for the round(sparsity * n) smallest entries (ties broken by position)."""
    n = magnitude.numel()
    k = min(n, int(sparsity * n + 0.5))
    mask = torch.ones(n, dtype=magnitude.dtype, device=magnitude.device)
    if k:
        mask[torch.argsort(magnitude.flatten(), stable=True)[:k]] = 0
    return mask.view_as(magnitude)


def sparse_bytes(model: nn.Module, weights: Mapping[str, Tensor]) -> int:
    """Bytes of the state_dict with ``weights`` stored as their non-zero values plus a one-bit
    occupancy mask, everything else dense."""
    sparse = {f"{name}.weight" for name in weights}
    total = 0
    for key, tensor in model.state_dict().items():
        if key in sparse:
            total += int(torch.count_nonzero(tensor)) * tensor.element_size() + math.ceil(tensor.numel() / 8)
        else:
            total += tensor.numel() * tensor.element_size()
    return total


def dense_bytes(model: nn.Module) -> int:
    return sum(t.numel() * t.element_size() for t in model.state_dict().values())
