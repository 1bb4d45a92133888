"""Training objectives. An objective runs the forward pass itself (so later methods can
read intermediate features through hooks or several teachers) and returns the loss and
the student's logits; its ``extra_modules`` (e.g. hint adapters) train with the student
but are not saved with it."""

from __future__ import annotations

from typing import Protocol

from torch import Tensor, nn

from distillcli.registry import Registry


class Objective(Protocol):
    def __call__(self, model: nn.Module, images: Tensor, labels: Tensor, indices: Tensor) -> tuple[Tensor, Tensor]:
        """(scalar loss, student logits)."""
        ...

    def extra_modules(self) -> list[nn.Module]: ...


LOSSES: Registry[type] = Registry("loss")
