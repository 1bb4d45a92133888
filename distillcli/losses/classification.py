"""Hard-label cross-entropy (with the step's label smoothing): training on the labels alone is
the objective made of this one term."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from distillcli.losses.options import CEOptions
from distillcli.losses.terms import Outputs, Term, TermContext


class CETerm(Term):
    def __init__(self, opts: CEOptions, ctx: TermContext) -> None:
        self.label_smoothing = ctx.label_smoothing

    def __call__(self, out: Outputs) -> Tensor:
        return F.cross_entropy(out.student, out.labels, label_smoothing=self.label_smoothing)
