"""The model every step passes on: normalisation + backbone, taking images in [0, 1].

Keeping the normalisation inside the model means a teacher trained on other statistics
(e.g. a foreign checkpoint with ImageNet mean/std) and a student see the same input batch,
and exported or quantized files need no separate preprocessing contract.
"""

from __future__ import annotations

import torch
from torch import nn


class ImageClassifier(nn.Module):
    def __init__(self, net: nn.Module, mean: list[float], std: list[float]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.mean) / self.std)
