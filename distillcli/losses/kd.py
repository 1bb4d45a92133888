"""Hinton et al. 2015, "Distilling the Knowledge in a Neural Network".

loss = (1 - alpha) * CE(student, y) + alpha * T^2 * KL(softmax(t / T) || softmax(s / T)).
The T^2 factor keeps the soft-target gradients on the same scale as the hard-label ones
when T changes (the soft gradients shrink as 1/T^2). alpha weighs the soft term, as in the
paper (some tools put it on the hard term instead).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from distillcli.losses.options import KDTermOptions
from distillcli.losses.terms import Outputs, Term, TermContext


def kd_loss(student_logits: Tensor, teacher_logits: Tensor, labels: Tensor, temperature: float,
            alpha: float, label_smoothing: float = 0.0) -> Tensor:
    t = temperature
    soft = F.kl_div(F.log_softmax(student_logits / t, dim=1), F.log_softmax(teacher_logits / t, dim=1),
                    reduction="batchmean", log_target=True) * (t * t)
    if alpha >= 1.0:
        return soft
    hard = F.cross_entropy(student_logits, labels, label_smoothing=label_smoothing)
    return (1.0 - alpha) * hard + alpha * soft


class KDTerm(Term):
    def __init__(self, opts: KDTermOptions, ctx: TermContext) -> None:
        self.temperature = ctx.resolve(opts, "temperature")
        self.alpha = ctx.resolve(opts, "alpha")
        self.label_smoothing = ctx.label_smoothing

    def __call__(self, out: Outputs) -> Tensor:
        assert out.teacher is not None  # internal: CombinedObjective runs the teacher for terms that read it
        return kd_loss(out.student, out.teacher, out.labels, self.temperature, self.alpha, self.label_smoothing)
