"""Attention transfer: Zagoruyko, Komodakis, "Paying More Attention to Attention: Improving the
Performance of Convolutional Neural Networks via Attention Transfer", ICLR 2017.

A layer's spatial attention map is the channel mean of |feature|^p, flattened and L2-normalised;
normalising makes it comparable across networks of different width. The student matches the
teacher's maps at each named layer pair: loss = beta / 2 * sum_pairs mean((Q_s - Q_t)^2), with
the paper's p = 2 and beta = 1000 (its ``weight`` here; the mean over batch and positions is why
beta is that large). Maps of different sizes are average-pooled to the smaller one first.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from distillcli.errors import OptionError
from distillcli.losses.options import ATOptions
from distillcli.losses.terms import Outputs, Term, TermContext, same_size

def attention_map(feature: Tensor, p: float) -> Tensor:
    """(N, C, H, W) -> (N, H*W): L2-normalised channel mean of |feature|^p."""
    return F.normalize(feature.float().abs().pow(p).mean(1).flatten(1), dim=1)


class AttentionTransfer(Term):
    def __init__(self, opts: ATOptions, ctx: TermContext) -> None:
        if opts.teacher_layers == "stages":
            self.student_layers, self.teacher_layers = ctx.stages()
        else:
            self.teacher_layers, self.student_layers = list(opts.teacher_layers), list(opts.student_layers)
        s_feats, t_feats = ctx.probe(self.student_layers, self.teacher_layers)
        for s_name, t_name in zip(self.student_layers, self.teacher_layers):
            if s_feats[s_name].dim() != 4 or t_feats[t_name].dim() != 4:
                raise OptionError(f"at: student {s_name!r} and teacher {t_name!r} must both give (C, H, W) "
                                  f"feature maps, got {tuple(s_feats[s_name].shape[1:])} and "
                                  f"{tuple(t_feats[t_name].shape[1:])}",
                                  "pair convolutional stages (e.g. net.layer2 with net.layer2)")
        self.p = opts.p

    def __call__(self, out: Outputs) -> Tensor:
        total = out.student.new_zeros((), dtype=out.student.dtype)
        for s_name, t_name in zip(self.student_layers, self.teacher_layers):
            s, t = same_size(out.student_feats[s_name], out.teacher_feats[t_name].detach())
            total = total + (attention_map(s, self.p) - attention_map(t, self.p)).pow(2).mean()
        return 0.5 * total
