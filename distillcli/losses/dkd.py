"""Decoupled Knowledge Distillation: Zhao, Cui, Song, Qiu, Liang, "Decoupled Knowledge
Distillation", CVPR 2022.

Classical KD's KL splits exactly into TCKD (a binary KL on target vs. all other classes) plus
(1 - p_t^teacher) * NCKD (a KL among the non-target classes only). That weight suppresses NCKD
precisely when the teacher is confident, which is when its "dark knowledge" is most reliable;
DKD weighs the two parts freely: alpha * TCKD + beta * NCKD (both times T^2, as KD).
The paper's CIFAR-100 setting is alpha = 1, beta = 8, T = 4, with the DKD term warmed up linearly
over the first 20 epochs (it is large early on and would swamp the cross-entropy). Its authors use
beta = 2 for ResNet-56 -> ResNet-20, and here beta = 8 collapsed that pair to chance level on a
15-epoch CIFAR-10 schedule while beta = 2 trained it (docs/benchmarks.md): 2 is the default.
T is the term's own temperature, else the step's, else 4.
Hard labels come from a separate ``ce`` term (``loss: dkd`` adds one with weight 1, as the paper).
"""

from __future__ import annotations

import torch
from torch import Tensor

from distillcli.losses.options import DKDOptions
from distillcli.losses.terms import Outputs, Term, TermContext

_FAR = 1e9  # pushes the target logit out of the non-target softmax without inf - inf = nan


def decoupled_kl(student: Tensor, teacher: Tensor, labels: Tensor, temperature: float) -> tuple[Tensor, Tensor]:
    """Per-sample (TCKD, NCKD), without the T^2 factor."""
    target = torch.zeros_like(student, dtype=torch.bool).scatter_(1, labels.view(-1, 1), True)

    def parts(logits: Tensor) -> tuple[Tensor, Tensor]:
        z = logits.float() / temperature
        log_p = z.log_softmax(1)
        log_binary = torch.stack([log_p.masked_select(target), log_p.masked_fill(target, -_FAR).logsumexp(1)], 1)
        log_rest = z.masked_fill(target, -_FAR).log_softmax(1)  # distribution among non-target classes
        return log_binary, log_rest

    s_bin, s_rest = parts(student)
    t_bin, t_rest = parts(teacher)
    tckd = (t_bin.exp() * (t_bin - s_bin)).sum(1)
    nckd = (t_rest.exp() * (t_rest - s_rest)).masked_fill(target, 0.0).sum(1)
    return tckd, nckd


class DecoupledKD(Term):
    def __init__(self, opts: DKDOptions, ctx: TermContext) -> None:
        self.opts = opts
        self.temperature = ctx.resolve(opts, "temperature")
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def warmup(self) -> float:
        """(epoch + 1) / warmup_epochs, capped at 1; the trainer's epochs count from 0."""
        w = self.opts.warmup_epochs
        return 1.0 if w == 0 else min((self.epoch + 1) / w, 1.0)

    def __call__(self, out: Outputs) -> Tensor:
        assert out.teacher is not None  # internal: CombinedObjective runs the teacher for terms that read it
        t = self.temperature
        tckd, nckd = decoupled_kl(out.student, out.teacher, out.labels, t)
        return self.warmup() * t * t * (self.opts.alpha * tckd + self.opts.beta * nckd).mean()
