"""Every objective is a weighted sum of terms, built here from a recipe's ``loss:``.

Every step that distils (distill, the fine-tunes of prune and share, QAT) declares its options by
inheriting ``KDOptions``, so the names and defaults are the same everywhere, and builds its
objective with ``make_objective``.
"""

from __future__ import annotations

from typing import Sequence

from torch import nn

from distillcli.errors import OptionError
from distillcli.losses.combined import CombinedObjective
from distillcli.losses.features import paired_stages, probe
from distillcli.losses.options import KDOptions
from distillcli.losses.specs import LossTerm, loss_problems, parse_loss
from distillcli.losses.terms import Objective, Term, TermContext
from distillcli.teacher_cache.logits import TeacherLogits


def make_objective(loss: str | Sequence[LossTerm], teacher: nn.Module | None = None, kd: KDOptions | None = None,
                   label_smoothing: float = 0.0, student: nn.Module | None = None,
                   input_shape: tuple[int, int, int] | None = None, logits: TeacherLogits | None = None) -> Objective:
    """The weighted sum of ``loss``'s terms: a name (``"ce"``: labels only; ``"kd"``, ``"dkd"`` ...: its
    preset) or a recipe's list of terms. ``kd``: the step-level temperature and alpha, used by terms
    that leave theirs unset. Feature terms need ``student`` and the data's ``input_shape`` (to find
    layers and build adapters). ``logits``: where the teacher's logits come from (a step's
    ``ctx.teacher_logits``; default: the teacher, run on every batch)."""
    terms = [LossTerm.model_validate(t) for t in parse_loss(loss)] if isinstance(loss, str) else list(loss)
    kd = kd or KDOptions()
    entries = [t.entry for t in terms]
    reads_teacher = any(e.teacher_logits or e.features for e in entries)
    if teacher is None and reads_teacher:
        raise OptionError(f"loss {', '.join(t.method for t in terms)} distils from a teacher, and there is none here",
                          "add a teacher, or train on the labels alone (`loss: ce`)")
    problems = [p for p in loss_problems(terms, kd.alpha, set()) if "count twice" in p]
    if problems:
        raise OptionError(f"loss: {problems[0]}", "see docs/methods.md, Distillation")
    if student is None and uses_teacher_features(terms):
        raise OptionError("feature terms (fitnet, at) need the student model", "pass student= to make_objective")

    def look(s_names: list[str], t_names: list[str]) -> tuple[dict, dict]:
        if student is None or teacher is None or input_shape is None:
            raise OptionError("feature terms need the student, the teacher and the input shape",
                              "pass student= and input_shape= to make_objective")
        return probe(student, s_names, "student", input_shape), probe(teacher, t_names, "teacher", input_shape)

    def stages() -> tuple[list[str], list[str]]:
        if student is None or teacher is None or input_shape is None:
            raise OptionError("`stages` needs the student, the teacher and the input shape",
                              "pass student= and input_shape= to make_objective")
        return paired_stages(student, teacher, input_shape)

    ctx = TermContext(teacher, kd.temperature, kd.alpha, label_smoothing, look, stages)
    built: list[tuple[float, Term]] = [(getattr(t.options, "weight"), t.entry.load()(t.options, ctx)) for t in terms]
    reads_logits = any(e.teacher_logits for e in entries)
    return CombinedObjective(built, student if student is not None else nn.Identity(),
                             teacher if reads_teacher else None, logits, reads_logits)


def uses_teacher_features(terms: Sequence[LossTerm]) -> bool:
    """Terms that read the teacher's layers (which stored logits cannot give)."""
    return any(t.entry.features for t in terms)
