"""Knowledge distillation from the recipe's teacher (Hinton et al. 2015)."""

from __future__ import annotations

from pydantic import Field

from distillcli.errors import OptionError
from distillcli.losses.kd import KnowledgeDistillation
from distillcli.models.handle import ModelHandle
from distillcli.steps.base import StepConfig, StepContext, StepOutput, prepare, step
from distillcli.training.optim import OptimConfig
from distillcli.training.trainer import Trainer


class DistillConfig(StepConfig, OptimConfig):
    temperature: float = Field(4.0, gt=0, description="softmax temperature T of both models' logits")
    alpha: float = Field(0.9, ge=0, le=1, description="weight of the soft (teacher) term; 1 - alpha weighs the labels")


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
    objective = KnowledgeDistillation(teacher, cfg.temperature, cfg.alpha, cfg.label_smoothing)
    curve = Trainer(module, objective, ctx.data, cfg, ctx.progress, title="distill").fit()
    return StepOutput(ModelHandle(module, model.arch, model.kind, model.info), curve)
