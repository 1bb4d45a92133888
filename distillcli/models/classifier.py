"""The model every step passes on: normalisation + backbone, taking images in [0, 1].

Keeping the normalisation inside the model means a teacher trained on other statistics
(e.g. a foreign checkpoint with ImageNet mean/std) and a student see the same input batch,
and exported or quantized files need no separate preprocessing contract.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

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


@dataclass(frozen=True)
class ArchSpec:
    """Everything needed to rebuild the unmodified architecture of a model."""

    name: str
    num_classes: int
    in_channels: int
    mean: list[float]
    std: list[float]
    kwargs: dict[str, Any] = field(default_factory=dict)
    keep_blocks: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ArchSpec":
        return cls(**d)


@dataclass
class ModelHandle:
    """What steps receive and return: the module plus how to rebuild and save it.

    ``kind`` says how the model is stored: "eager" (an nn.Module rebuilt from ``arch`` and
    its recorded structure) or a compressed form registered by the compression layer.
    ``info`` carries kind-specific facts (quantization scheme, sparsity ...) into the file.
    """

    module: nn.Module
    arch: ArchSpec
    kind: str = "eager"
    info: dict[str, Any] = field(default_factory=dict)
