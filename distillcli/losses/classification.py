"""Plain supervised cross-entropy (with optional label smoothing)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from distillcli.losses.registry import LOSSES


@LOSSES.register("ce")
class CrossEntropy:
    def __init__(self, label_smoothing: float = 0.0) -> None:
        self.label_smoothing = label_smoothing

    def __call__(self, model: nn.Module, images: Tensor, labels: Tensor, indices: Tensor) -> tuple[Tensor, Tensor]:
        logits = model(images)
        return F.cross_entropy(logits, labels, label_smoothing=self.label_smoothing), logits

    def extra_modules(self) -> list[nn.Module]:
        return []
