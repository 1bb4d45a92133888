"""FitNets hints: Romero, Ballas, Kahou, Chassang, Gatta, Bengio, "FitNets: Hints for Thin Deep
Nets", ICLR 2015.

A thin student learns faster when one of its intermediate layers (the guided layer) is asked to
predict a teacher layer (the hint) through a small regressor, since the channel counts differ.
Here the regressor is a 1x1 convolution + BatchNorm (a linear layer for flat features), and the
loss is the MSE to the teacher's feature, both average-pooled to the smaller spatial size.
The paper trains the hint in a first stage; like the CIFAR-100 benchmark of CRD (Tian et al.
2020) this trains it jointly, with its weight of 100. The regressor is built from a dry forward
at construction, so the optimiser sees it; it trains with the student but is not saved with it.
"""

from __future__ import annotations

from torch import Tensor, nn

from distillcli.errors import OptionError
from distillcli.losses.options import FitNetOptions
from distillcli.losses.terms import Outputs, Term, TermContext, same_size



def adapter(student: Tensor, teacher: Tensor, where: str) -> nn.Module:
    """The regressor from the student's feature to the teacher's channels."""
    if student.dim() == 4 and teacher.dim() == 4:
        return nn.Sequential(nn.Conv2d(student.shape[1], teacher.shape[1], 1, bias=False),
                             nn.BatchNorm2d(teacher.shape[1]))
    if student.dim() == 2 and teacher.dim() == 2:
        return nn.Linear(student.shape[1], teacher.shape[1])
    raise OptionError(f"fitnet: {where} give features of shapes {tuple(student.shape[1:])} (student) and "
                      f"{tuple(teacher.shape[1:])} (teacher); both must be (C, H, W) maps or flat (C,) vectors",
                      "pick layers of the same kind, e.g. the outputs of convolutional stages")


class FitNetHint(Term):
    def __init__(self, opts: FitNetOptions, ctx: TermContext) -> None:
        self.teacher_layers = [opts.teacher_layer]
        self.student_layers = [opts.student_layer]
        s_feats, t_feats = ctx.probe(self.student_layers, self.teacher_layers)
        s, t = s_feats[opts.student_layer], t_feats[opts.teacher_layer]
        where = f"student {opts.student_layer!r} and teacher {opts.teacher_layer!r}"
        self.adapter = adapter(s, t, where).to(s.device)
        self.opts = opts

    def __call__(self, out: Outputs) -> Tensor:
        s = self.adapter(out.student_feats[self.opts.student_layer])
        s, t = same_size(s, out.teacher_feats[self.opts.teacher_layer].detach())
        return (s.float() - t.float()).pow(2).mean()

    def extra_modules(self) -> list[nn.Module]:
        return [self.adapter]
