"""Objectives chosen by name, in one place, with one distillation option block.

Every step that distils (distill, the fine-tunes of prune and share, QAT) declares its
options by inheriting ``KDOptions``, so the names and defaults are the same everywhere,
and builds its objective with ``make_objective``.
"""

from __future__ import annotations

from typing import Sequence

from torch import nn

from distillcli.errors import OptionError
from distillcli.losses import at, classification, dist, dkd, fitnet  # noqa: F401  (register)
from distillcli.losses.combined import CombinedObjective
from distillcli.losses.features import probe
from distillcli.losses.kd import KnowledgeDistillation, SoftTargets
from distillcli.losses.options import KDOptions
from distillcli.losses.registry import LOSSES, Objective
from distillcli.losses.specs import LossTerm, label_problem
from distillcli.losses.terms import LabelTerm, Term, TermContext
from distillcli.teacher_cache.logits import TeacherLogits


def make_objective(name: str | Sequence[LossTerm], teacher: nn.Module | None = None, kd: KDOptions | None = None,
                   label_smoothing: float = 0.0, student: nn.Module | None = None,
                   input_shape: tuple[int, int, int] | None = None, logits: TeacherLogits | None = None) -> Objective:
    """The objective registered as ``name``: "ce" (labels only) or a distillation loss from ``teacher``;
    or, given the terms of a recipe's ``loss:``, their weighted sum (``student`` and the data's
    ``input_shape`` are then needed by feature terms, to find layers and build adapters).
    ``logits``: where the teacher's logits come from (a step's ``ctx.teacher_logits``; default: the
    teacher, run on every batch)."""
    if not isinstance(name, str):
        return _combined(list(name), teacher, kd or KDOptions(), label_smoothing, student, input_shape, logits)
    factory = LOSSES.get(name)
    if name == "ce":
        return factory(label_smoothing)
    if teacher is None:
        raise OptionError(f"the {name!r} objective distils from a teacher, and there is none here",
                          "add a teacher, or train on the labels alone")
    kd = kd or KDOptions()
    return factory(teacher, kd.temperature, kd.alpha, label_smoothing, logits=logits)


def uses_teacher_features(terms: Sequence[LossTerm]) -> bool:
    """Terms that read the teacher's layers (which stored logits cannot give)."""
    return any(t.fitnet is not None or t.at is not None for t in terms)


def _combined(terms: list[LossTerm], teacher: nn.Module | None, kd: KDOptions, label_smoothing: float,
              student: nn.Module | None, input_shape: tuple[int, int, int] | None,
              logits: TeacherLogits | None) -> Objective:
    if len(terms) == 1 and terms[0].kd is not None and terms[0].kd.weight == 1.0:
        opts = terms[0].kd  # plain KD: the very objective the step always used
        if teacher is None:
            return make_objective("kd", None)  # raises: no teacher
        return KnowledgeDistillation(teacher, kd.temperature if opts.temperature is None else opts.temperature,
                                     kd.alpha if opts.alpha is None else opts.alpha, label_smoothing, logits)
    if teacher is None and any(t.ce is None for t in terms):
        raise OptionError("these loss terms distil from a teacher, and there is none here",
                          "add a teacher, or use `loss: ce`")
    problem = label_problem(terms, kd.alpha)
    if problem:
        raise OptionError(f"loss: {problem}", "see README, Distillation methods")
    if student is None and uses_teacher_features(terms):
        raise OptionError("feature terms (fitnet, at) need the student model", "pass student= to make_objective")

    def look(s_names: list[str], t_names: list[str]) -> tuple[dict, dict]:
        if student is None or teacher is None or input_shape is None:
            raise OptionError("feature terms need the student, the teacher and the input shape",
                              "pass student= and input_shape= to make_objective")
        return probe(student, s_names, "student", input_shape), probe(teacher, t_names, "teacher", input_shape)

    ctx = TermContext(teacher, kd.temperature, kd.alpha, label_smoothing, look)
    built: list[tuple[float, Term]] = []
    for term in terms:
        opts = term.options
        if term.ce is not None:
            built.append((term.ce.weight, LabelTerm(label_smoothing)))
        elif term.kd is not None:
            built.append((term.kd.weight, SoftTargets(term.kd, ctx)))
        else:
            built.append((getattr(opts, "weight"), LOSSES.get(term.method)(opts, ctx)))
    return CombinedObjective(built, student if student is not None else nn.Identity(), teacher, logits)
