"""Steps by name. The registry knows each step's options class (torch-free), and finds its
function, named like the step in ``distillcli.steps.<name>``, when the step first runs: a
recipe is checked, and its schema written, without importing torch."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module
from typing import TYPE_CHECKING

from distillcli.registry import Registry
from distillcli.steps.options import (DistillConfig, EvaluateConfig, ExportConfig, PruneConfig, QuantizeConfig,
                                      SensitivityConfig, ShareConfig, StepConfig, TrainConfig)

if TYPE_CHECKING:
    from distillcli.steps.base import StepFn


@dataclass(frozen=True)
class StepDef:
    name: str
    config: type[StepConfig]

    @property
    def run(self) -> StepFn:
        """``run(model, ctx, cfg) -> StepOutput``: the function ``<name>`` of ``distillcli.steps.<name>``."""
        return getattr(import_module(f"distillcli.steps.{self.name}"), self.name)


STEPS: Registry[StepDef] = Registry("step")
for _step in (StepDef("train", TrainConfig), StepDef("distill", DistillConfig), StepDef("evaluate", EvaluateConfig),
              StepDef("prune", PruneConfig), StepDef("share", ShareConfig), StepDef("quantize", QuantizeConfig),
              StepDef("export", ExportConfig), StepDef("sensitivity", SensitivityConfig)):
    STEPS.register(_step.name)(_step)
