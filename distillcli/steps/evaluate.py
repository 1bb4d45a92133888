"""Evaluation only: the pipeline measures the model after this step like after any other."""

from __future__ import annotations

from distillcli.models.handle import ModelHandle
from distillcli.steps.base import StepContext, StepOutput
from distillcli.steps.options import EvaluateConfig


def evaluate(model: ModelHandle, ctx: StepContext, cfg: EvaluateConfig) -> StepOutput:
    """Measure accuracy, size and latency of the model as it is."""
    return StepOutput(model)
