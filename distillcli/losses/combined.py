"""The one objective: weighted terms (kd, dkd, dist, fitnet, at, ce ...), chosen in the recipe.

Both models run forward once per batch whatever the terms: the teacher frozen, in eval mode and
without autograd, with hooks on the layers the terms name,
removed again after each forward. Without teacher layers to read, the teacher's logits come from
``TeacherLogits`` (the store, or the teacher). ``set_epoch`` (called by the Trainer at each epoch start)
reaches the terms that schedule their weight (DKD's warm-up).
"""

from __future__ import annotations

from torch import Tensor, nn

from distillcli.losses.features import FeatureTap, unwrap
from distillcli.losses.terms import Outputs, Term
from distillcli.teacher_cache.logits import TeacherLogits


class CombinedObjective:
    def __init__(self, terms: list[tuple[float, Term]], student: nn.Module, teacher: nn.Module | None,
                 logits: TeacherLogits | None = None, reads_logits: bool = True) -> None:
        """``teacher``: None when no term reads it; ``reads_logits``: whether a term reads its outputs;
        ``logits``: where they come from (default: the teacher, run per batch)."""
        self.terms = terms
        s_layers = [n for _, t in terms for n in t.student_layers]
        t_layers = [n for _, t in terms for n in t.teacher_layers]
        self.student_tap = FeatureTap(student, s_layers, "student")  # checks the names now, not mid-run
        self.teacher_tap = FeatureTap(teacher, t_layers, "teacher") if teacher is not None else None
        self.s_layers = s_layers
        needed = teacher is not None and (reads_logits or bool(t_layers))
        self.logits = (logits if logits is not None else TeacherLogits(teacher)) if needed else None
        assert not (t_layers and self.logits is not None and self.logits.store is not None), \
            "stored logits cannot serve teacher features"  # open_store refuses feature terms

    @property
    def teacher(self) -> nn.Module | None:
        """The frozen teacher, when a term needs it (the trainer times and may compile it)."""
        return self.logits.teacher if self.logits is not None else None

    def set_epoch(self, epoch: int) -> None:
        if self.logits is not None:
            self.logits.set_epoch(epoch)
        for _, term in self.terms:
            fn = getattr(term, "set_epoch", None)
            if fn is not None:
                fn(epoch)

    def __call__(self, model: nn.Module, images: Tensor, labels: Tensor, indices: Tensor) -> tuple[Tensor, Tensor]:
        teacher_logits, teacher_feats = None, {}
        if self.logits is not None and self.teacher_tap is not None:
            with self.teacher_tap as teacher_feats:
                teacher_logits = self.logits(images, indices)
        # resolve the student's layers on the model actually called (it may be DDP-wrapped)
        tap = FeatureTap(unwrap(model), self.s_layers, "student") if self.s_layers else self.student_tap
        with tap as student_feats:
            logits = model(images)
        out = Outputs(logits, teacher_logits, labels, student_feats, teacher_feats)
        loss = sum((weight * term(out) for weight, term in self.terms), logits.new_zeros(()))
        return loss, logits

    def extra_modules(self) -> list[nn.Module]:
        return [m for _, term in self.terms for m in term.extra_modules()]
