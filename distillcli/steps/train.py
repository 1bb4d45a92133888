"""Supervised training with cross-entropy."""

from __future__ import annotations

from dataclasses import replace

from distillcli.losses import make_objective
from distillcli.models.handle import ModelHandle
from distillcli.steps.base import StepContext, StepOutput, prepare
from distillcli.steps.options import TrainConfig


def train(model: ModelHandle, ctx: StepContext, cfg: TrainConfig) -> StepOutput:
    """Train the model on the labels (SGD/AdamW, cosine or multistep, warm-up, label smoothing)."""
    module = prepare(model.module, ctx)
    objective = make_objective("ce", label_smoothing=cfg.label_smoothing)
    curve = ctx.fit(module, objective, cfg, title=f"train[{cfg.model}]")
    return StepOutput(replace(model, module=module), curve)
