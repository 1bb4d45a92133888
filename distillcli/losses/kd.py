"""Hinton et al. 2015, "Distilling the Knowledge in a Neural Network".

loss = (1 - alpha) * CE(student, y) + alpha * T^2 * KL(softmax(t / T) || softmax(s / T)).
The T^2 factor keeps the soft-target gradients on the same scale as the hard-label ones
when T changes (the soft gradients shrink as 1/T^2). alpha weighs the soft term, as in the
paper (some tools put it on the hard term instead).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from distillcli.losses.options import KDTermOptions
from distillcli.losses.registry import LOSSES
from distillcli.losses.terms import Outputs, Term, TermContext
from distillcli.teacher_cache.logits import TeacherLogits


def kd_loss(student_logits: Tensor, teacher_logits: Tensor, labels: Tensor, temperature: float,
            alpha: float, label_smoothing: float = 0.0) -> Tensor:
    t = temperature
    soft = F.kl_div(F.log_softmax(student_logits / t, dim=1), F.log_softmax(teacher_logits / t, dim=1),
                    reduction="batchmean", log_target=True) * (t * t)
    if alpha >= 1.0:
        return soft
    hard = F.cross_entropy(student_logits, labels, label_smoothing=label_smoothing)
    return (1.0 - alpha) * hard + alpha * soft


@LOSSES.register("kd")
class KnowledgeDistillation:
    """The teacher is frozen and kept in eval mode; its logits come from ``logits`` (the store,
    or the teacher run without autograd)."""

    def __init__(self, teacher: nn.Module, temperature: float = 4.0, alpha: float = 0.9,
                 label_smoothing: float = 0.0, logits: TeacherLogits | None = None) -> None:
        self.logits = logits if logits is not None else TeacherLogits(teacher)
        self.teacher = self.logits.teacher
        self.temperature = temperature
        self.alpha = alpha
        self.label_smoothing = label_smoothing

    def set_epoch(self, epoch: int) -> None:
        self.logits.set_epoch(epoch)

    def __call__(self, model: nn.Module, images: Tensor, labels: Tensor, indices: Tensor) -> tuple[Tensor, Tensor]:
        teacher_logits = self.logits(images, indices)
        logits = model(images)
        return kd_loss(logits, teacher_logits, labels, self.temperature, self.alpha, self.label_smoothing), logits

    def extra_modules(self) -> list[nn.Module]:
        return []


class SoftTargets(Term):
    """``kd_loss`` as a term of a combined objective."""

    def __init__(self, opts: KDTermOptions, ctx: TermContext) -> None:
        self.temperature = ctx.temperature if opts.temperature is None else opts.temperature
        self.alpha = ctx.alpha if opts.alpha is None else opts.alpha
        self.label_smoothing = ctx.label_smoothing

    def __call__(self, out: Outputs) -> Tensor:
        assert out.teacher is not None  # internal: CombinedObjective runs the teacher when needs_teacher
        return kd_loss(out.student, out.teacher, out.labels, self.temperature, self.alpha, self.label_smoothing)
