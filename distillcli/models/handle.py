"""What steps pass between them: a module plus how to rebuild and save it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from torch import nn


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
