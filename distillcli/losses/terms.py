"""The pieces a combined objective is made of.

A term sees one batch's ``Outputs`` (logits of both models, labels, the named features) and
returns its scalar loss, unweighted; ``CombinedObjective`` runs the forward passes once for all
terms and sums ``weight * term``. ``TermContext`` is what a term may need to build itself
(adapters need the feature shapes, hence ``probe``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch.nn.functional as F
from torch import Tensor, nn


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
    temperature: float  # the step-level KD options, defaults of the kd term
    alpha: float
    label_smoothing: float
    probe: Callable[[list[str], list[str]], tuple[dict[str, Tensor], dict[str, Tensor]]]
    """(student layer names, teacher layer names) -> their features on a dry forward."""


class Term:
    """Base of every term: by default it reads logits only, needs the teacher and trains nothing
    beside the student; feature terms name their layers, adapters come from ``extra_modules``."""

    teacher_layers: list[str] = []
    student_layers: list[str] = []
    needs_teacher = True

    def __call__(self, out: Outputs) -> Tensor:
        raise NotImplementedError

    def extra_modules(self) -> list[nn.Module]:
        return []


class LabelTerm(Term):
    """Hard-label cross-entropy (with the step's label smoothing)."""

    needs_teacher = False

    def __init__(self, label_smoothing: float) -> None:
        self.label_smoothing = label_smoothing

    def __call__(self, out: Outputs) -> Tensor:
        return F.cross_entropy(out.student, out.labels, label_smoothing=self.label_smoothing)


def same_size(student: Tensor, teacher: Tensor) -> tuple[Tensor, Tensor]:
    """Both feature maps average-pooled to the smaller one's spatial size (no-op when equal)."""
    if student.dim() != 4 or teacher.dim() != 4 or student.shape[2:] == teacher.shape[2:]:
        return student, teacher
    size = tuple(min(a, b) for a, b in zip(student.shape[2:], teacher.shape[2:]))
    return F.adaptive_avg_pool2d(student, size), F.adaptive_avg_pool2d(teacher, size)
