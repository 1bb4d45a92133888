"""Knowledge distillation from the recipe's teacher (Hinton et al. 2015)."""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator, model_validator

from distillcli.errors import OptionError
from distillcli.losses import KDOptions, make_objective
from distillcli.losses.objectives import uses_teacher_features
from distillcli.losses.specs import LossTerm, label_problem, parse_loss
from distillcli.models.handle import ModelHandle
from distillcli.steps.base import StepConfig, StepContext, StepOutput, prepare, step
from distillcli.training.optim import OptimConfig


class DistillConfig(StepConfig, OptimConfig, KDOptions):
    loss: list[LossTerm] = Field(default_factory=lambda: [LossTerm(kd={})],
                                 description="distillation method: a name (kd, dkd, dist, ce) or a list of weighted "
                                             "terms, e.g. [{kd: {}}, {fitnet: {teacher_layer: net.layer3, "
                                             "student_layer: net.layer3}}]")

    @field_validator("loss", mode="before")
    @classmethod
    def _named(cls, value: Any) -> Any:
        return parse_loss(value)

    @model_validator(mode="after")
    def _labels_once(self) -> "DistillConfig":
        problem = label_problem(self.loss, self.alpha)
        if problem:
            raise ValueError(f"loss: {problem}")
        return self


@step("distill", DistillConfig)
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
    return StepOutput(ModelHandle(module, model.arch, model.kind, model.info), curve)
