"""Pipeline steps, registered by name in STEPS. Importing this package registers them all."""

from distillcli.steps import (distill, evaluate, export, prune, quantize, sensitivity, share,  # noqa: F401  (register)
                              train)
from distillcli.steps.base import STEPS, StepConfig, StepContext, StepDef, StepOutput

__all__ = ["STEPS", "StepConfig", "StepContext", "StepDef", "StepOutput"]
