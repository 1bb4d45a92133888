"""Pipeline steps, registered by name in STEPS. Their options (``steps.options``) load without
torch; ``StepContext`` and ``StepOutput`` (``steps.base``) and the step functions on first use."""

from distillcli.lazy import lazy_exports
from distillcli.steps.options import StepConfig
from distillcli.steps.registry import STEPS, StepEntry

__all__ = ["STEPS", "StepConfig", "StepContext", "StepEntry", "StepOutput"]
__getattr__ = lazy_exports(__name__, {"StepContext": "base", "StepOutput": "base"})
