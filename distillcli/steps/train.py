"""Supervised training with cross-entropy."""

from __future__ import annotations

from distillcli.losses.classification import CrossEntropy
from distillcli.models.handle import ModelHandle
from distillcli.steps.base import StepConfig, StepContext, StepOutput, prepare, step
from distillcli.training.optim import OptimConfig
from distillcli.training.trainer import Trainer


class TrainConfig(StepConfig, OptimConfig):
    pass


@step("train", TrainConfig)
def train(model: ModelHandle, ctx: StepContext, cfg: TrainConfig) -> StepOutput:
    """Train the model on the labels (SGD/AdamW, cosine or multistep, warm-up, label smoothing)."""
    module = prepare(model.module, ctx)
    objective = CrossEntropy(cfg.label_smoothing)
    curve = Trainer(module, objective, ctx.data, cfg, ctx.progress, title=f"train[{cfg.model}]").fit()
    return StepOutput(ModelHandle(module, model.arch, model.kind, model.info), curve)
