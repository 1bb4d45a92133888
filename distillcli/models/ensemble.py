"""Several teachers seen as one: a module whose logits are the weighted mean of its members'.

Logits are averaged, not probabilities: the softmax of the mean is the normalised weighted
geometric mean of the members' distributions, and a distillation temperature then softens the
ensemble exactly as it softens one teacher. Each member keeps its own input normalisation
(see classifier.py), so all of them take the same [0, 1] batch.

Members are the children "0", "1", ..., so feature terms name their layers ``0.net.layer3``;
the normalised weights are a buffer, so the state_dict (and anything keyed on it) holds them.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from distillcli.data.bundle import DataBundle
from distillcli.models.handle import ArchSpec, ModelHandle

ENSEMBLE = "ensemble"


class TeacherEnsemble(nn.Module):
    weights: Tensor

    def __init__(self, members: Sequence[nn.Module], weights: Sequence[float]) -> None:
        super().__init__()
        if not members or len(members) != len(weights) or min(weights) <= 0:
            raise ValueError("an ensemble needs at least one member and one positive weight per member")
        for i, member in enumerate(members):
            self.add_module(str(i), member)
        w = torch.tensor(list(weights), dtype=torch.float64)
        self.register_buffer("weights", (w / w.sum()).float())

    def members(self) -> list[nn.Module]:
        return list(self.children())

    def forward(self, x: Tensor) -> Tensor:
        logits = torch.stack([member(x) for member in self.children()])  # (members, batch, classes)
        return (self.weights.to(logits.dtype).view(-1, 1, 1) * logits).sum(0)


def ensemble_handle(members: Sequence[ModelHandle], weights: Sequence[float], data: DataBundle) -> ModelHandle:
    """One teacher handle over ``members``. Its arch records the members' architectures and
    normalised weights; mean 0 / std 1 because the ensemble itself normalises nothing."""
    module = TeacherEnsemble([m.module for m in members], weights)
    channels = data.input_shape[0]
    arch = ArchSpec(name=ENSEMBLE, num_classes=data.num_classes, in_channels=channels, mean=[0.0] * channels,
                    std=[1.0] * channels, kwargs={"members": [m.arch.name for m in members],
                                                   "weights": [float(w) for w in module.weights]})
    return ModelHandle(module, arch)
