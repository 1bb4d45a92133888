"""DIST: Huang, You, Wang, Qian, Xu, "Knowledge Distillation from A Stronger Teacher",
NeurIPS 2022.

Matching probabilities exactly (KL) is too strict when the teacher is much stronger; DIST asks
only that the student's predictions be *linearly correlated* with the teacher's: the inter-class
relation (Pearson correlation of each sample's class probabilities) and the intra-class relation
(correlation of each class's probabilities across the batch). Both are invariant to shift and
scale of the probabilities. loss = T^2 * (beta * (1 - mean rho_inter) + gamma * (1 - mean rho_intra)).
Defaults: beta = gamma = 1 at T = 1 (the paper's ImageNet setting), chosen over its CIFAR-100
setting (beta = gamma = 2, T = 4) on a held-out share of CIFAR-10's training images at the 15-epoch
CPU budget (docs/benchmarks.md); the step's temperature, or the term's own, overrides T. Hard
labels come from a separate ``ce`` term (``loss: dist`` adds one with weight 1).
"""

from __future__ import annotations

from torch import Tensor

from distillcli.losses.options import DISTOptions
from distillcli.losses.terms import Outputs, Term, TermContext


def pearson(a: Tensor, b: Tensor, eps: float = 1e-8) -> Tensor:
    """Row-wise Pearson correlation of two (N, K) matrices."""
    a = a - a.mean(1, keepdim=True)
    b = b - b.mean(1, keepdim=True)
    return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1) + eps)


def dist_loss(student: Tensor, teacher: Tensor, temperature: float, beta: float, gamma: float) -> Tensor:
    p_s = (student.float() / temperature).softmax(1)
    p_t = (teacher.float() / temperature).softmax(1)
    inter = 1.0 - pearson(p_s, p_t).mean()
    intra = 1.0 - pearson(p_s.t(), p_t.t()).mean()
    return temperature * temperature * (beta * inter + gamma * intra)


class DIST(Term):
    def __init__(self, opts: DISTOptions, ctx: TermContext) -> None:
        self.opts = opts
        self.temperature = ctx.resolve(opts, "temperature")

    def __call__(self, out: Outputs) -> Tensor:
        assert out.teacher is not None  # internal: CombinedObjective runs the teacher for terms that read it
        o = self.opts
        return dist_loss(out.student, out.teacher, self.temperature, o.beta, o.gamma)
