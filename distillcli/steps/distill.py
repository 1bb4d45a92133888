"""Knowledge distillation from the recipe's teacher (Hinton et al. 2015)."""

from __future__ import annotations

from dataclasses import replace

from distillcli.errors import OptionError
from distillcli.losses import make_objective
from distillcli.losses.objectives import uses_teacher_features
from distillcli.models.handle import ModelHandle
from distillcli.steps.base import StepContext, StepOutput, prepare
from distillcli.steps.options import DistillConfig


def distill(model: ModelHandle, ctx: StepContext, cfg: DistillConfig) -> StepOutput:
    """Train the student to match the teacher's softened outputs and the labels."""
    if cfg.model == "teacher":
        raise OptionError("distill acts on the student; the teacher cannot distil into itself",
                          "remove `model: teacher` from the distill step")
    if ctx.teacher is None:
        raise OptionError("the distill step needs a teacher, and the recipe has none",
                          "add a `teacher:` section (arch + checkpoint, or arch + a train step with model: teacher)")
    module = prepare(model.module, ctx)
    teacher = prepare(ctx.teacher.module, ctx)
    logits = ctx.teacher_logits(teacher, cfg, features=uses_teacher_features(cfg.loss))
    objective = make_objective(cfg.loss, teacher, cfg, cfg.label_smoothing, student=module,
                               input_shape=ctx.data.input_shape, logits=logits)
    curve = ctx.fit(module, objective, cfg, title="distill")
    return StepOutput(replace(model, module=module), curve)
