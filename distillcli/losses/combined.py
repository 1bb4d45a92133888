"""One objective made of weighted terms (kd, dkd, dist, fitnet, at, ce), chosen in the recipe.

Both models run forward once per batch whatever the terms: the teacher frozen, in eval mode and
without autograd (as in ``KnowledgeDistillation``), with hooks on the layers the terms name,
removed again after each forward. ``set_epoch`` (called by the Trainer at each epoch start)
reaches the terms that schedule their weight (DKD's warm-up).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from distillcli.losses.features import FeatureTap, unwrap
from distillcli.losses.terms import Outputs, Term


class CombinedObjective:
    def __init__(self, terms: list[tuple[float, Term]], student: nn.Module, teacher: nn.Module | None) -> None:
        self.terms = terms
        s_layers = [n for _, t in terms for n in t.student_layers]
        t_layers = [n for _, t in terms for n in t.teacher_layers]
        self.student_tap = FeatureTap(student, s_layers, "student")  # checks the names now, not mid-run
        self.teacher_tap = FeatureTap(teacher, t_layers, "teacher") if teacher is not None else None
        self.s_layers = s_layers
        self.teacher = teacher if any(t.needs_teacher for _, t in terms) else None
        if self.teacher is not None:
            self.teacher.eval()
            for p in self.teacher.parameters():
                p.requires_grad_(False)

    def set_epoch(self, epoch: int) -> None:
        for _, term in self.terms:
            fn = getattr(term, "set_epoch", None)
            if fn is not None:
                fn(epoch)

    def __call__(self, model: nn.Module, images: Tensor, labels: Tensor, indices: Tensor) -> tuple[Tensor, Tensor]:
        teacher_logits, teacher_feats = None, {}
        if self.teacher is not None and self.teacher_tap is not None:
            with torch.no_grad(), self.teacher_tap as teacher_feats:
                teacher_logits = self.teacher(images)
        # resolve the student's layers on the model actually called (it may be DDP-wrapped)
        tap = FeatureTap(unwrap(model), self.s_layers, "student") if self.s_layers else self.student_tap
        with tap as student_feats:
            logits = model(images)
        out = Outputs(logits, teacher_logits, labels, student_feats, teacher_feats)
        loss = sum((weight * term(out) for weight, term in self.terms), logits.new_zeros(()))
        return loss, logits

    def extra_modules(self) -> list[nn.Module]:
        return [m for _, term in self.terms for m in term.extra_modules()]
