"""The pieces every objective is made of.

A term sees one batch's ``Outputs`` (logits of both models, labels, the named features) and
returns its scalar loss, unweighted; ``CombinedObjective`` runs the forward passes once for all
terms and sums ``weight * term``. ``TermContext`` is what a term may need to build itself
(the step's temperature and alpha; adapters need the feature shapes, hence ``probe``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Protocol

import torch.nn.functional as F
from pydantic import BaseModel
from torch import Tensor, nn


class Objective(Protocol):
    """What a training loop calls: runs the forward pass itself (so terms can read features through
    hooks) and returns (scalar loss, student logits); ``extra_modules`` (e.g. hint adapters) train
    with the student but are not saved with it."""

    def __call__(self, model: nn.Module, images: Tensor, labels: Tensor, indices: Tensor) -> tuple[Tensor, Tensor]:
        ...

    def extra_modules(self) -> list[nn.Module]: ...


@dataclass
class Outputs:
    student: Tensor
    teacher: Tensor | None
    labels: Tensor
    student_feats: dict[str, Tensor] = field(default_factory=dict)
    teacher_feats: dict[str, Tensor] = field(default_factory=dict)


@dataclass
class TermContext:
    teacher: nn.Module | None
    temperature: float | None  # the step-level KD options, used where a term leaves its own unset
    alpha: float
    label_smoothing: float
    probe: Callable[[list[str], list[str]], tuple[dict[str, Tensor], dict[str, Tensor]]]
    """(student layer names, teacher layer names) -> their features on a dry forward."""
    stages: Callable[[], tuple[list[str], list[str]]]
    """(student layers, teacher layers): the models' declared feature stages, paired by reduction."""

    def resolve(self, opts: BaseModel, key: str) -> float:
        """The term's own ``temperature`` / ``alpha``, else the step's, else (temperature) its method's."""
        for value in (getattr(opts, key), getattr(self, key)):
            if value is not None:
                return value
        return type(opts).default_temperature  # type: ignore[attr-defined]


class Term:
    """Base of every term: by default it reads logits only and trains nothing beside the student;
    feature terms name their layers, adapters come from ``extra_modules``. What a term reads is
    declared in its registry entry (``losses.registry``)."""

    teacher_layers: list[str] = []
    student_layers: list[str] = []

    def __call__(self, out: Outputs) -> Tensor:
        raise NotImplementedError

    def extra_modules(self) -> list[nn.Module]:
        return []


def same_size(student: Tensor, teacher: Tensor) -> tuple[Tensor, Tensor]:
    """Both feature maps average-pooled to the smaller one's spatial size (no-op when equal)."""
    if student.dim() != 4 or teacher.dim() != 4 or student.shape[2:] == teacher.shape[2:]:
        return student, teacher
    size = tuple(min(a, b) for a, b in zip(student.shape[2:], teacher.shape[2:]))
    return F.adaptive_avg_pool2d(student, size), F.adaptive_avg_pool2d(teacher, size)
