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
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import Tensor

from distillcli.errors import OptionError
from distillcli.losses.registry import LOSSES
from distillcli.losses.terms import Outputs, Term, TermContext, same_size

_Names = list[str]


class ATOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    weight: float = Field(1000.0, ge=0, le=1e6, description="beta: multiplies half the summed map distances")
    teacher_layers: _Names = Field(min_length=1, max_length=16, description="teacher modules, e.g. [net.layer2, net.layer3]")
    student_layers: _Names = Field(min_length=1, max_length=16, description="student modules, paired in order")
    p: float = Field(2.0, ge=1, le=8, description="exponent of |feature| in the attention map")

    @model_validator(mode="after")
    def _paired(self) -> "ATOptions":
        if len(self.teacher_layers) != len(self.student_layers):
            raise ValueError(f"at pairs layers in order: {len(self.teacher_layers)} teacher_layers but "
                             f"{len(self.student_layers)} student_layers; give as many of each")
        return self


def attention_map(feature: Tensor, p: float) -> Tensor:
    """(N, C, H, W) -> (N, H*W): L2-normalised channel mean of |feature|^p."""
    return F.normalize(feature.float().abs().pow(p).mean(1).flatten(1), dim=1)


@LOSSES.register("at")
class AttentionTransfer(Term):
    def __init__(self, opts: ATOptions, ctx: TermContext) -> None:
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
