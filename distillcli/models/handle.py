"""What steps pass between them: a module plus how to rebuild and save it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from torch import nn

from distillcli.facts import ModelFacts, Precision


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

    ``format`` says how the model is stored and run: "eager" (an nn.Module rebuilt from ``arch``
    and its recorded structure) or the ``model_format`` of another entry of ``modelfile.formats``
    ("pt2", "onnx", "aoti"); ``precision`` what its weights compute in. ``info`` carries how it
    was pruned, shared or quantized into the file.
    """

    module: nn.Module
    arch: ArchSpec
    format: str = "eager"
    precision: Precision = "fp32"
    info: ModelFacts = field(default_factory=ModelFacts)
