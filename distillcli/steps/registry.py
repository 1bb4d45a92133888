"""Steps by name, each with its options class and what it can act on (torch-free): a recipe is
checked, its schema written and `distill cache fill` planned without importing torch. The step
function (``steps.<name>.<name>``) is imported when the step first runs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from distillcli.registry import Entry, Registry
from distillcli.steps.options import (DistillConfig, EvaluateConfig, ExportConfig, PruneConfig, QuantizeConfig,
                                      SensitivityConfig, ShareConfig, StepConfig, TrainConfig)

if TYPE_CHECKING:
    from distillcli.models.handle import ModelHandle
    from distillcli.steps.base import StepContext, StepOutput


@dataclass(frozen=True, kw_only=True)
class StepEntry(Entry):
    config: type[StepConfig]
    needs_eager: bool = False  # changes or trains a float PyTorch model: not a program or an ONNX file
    keeps_teacher: bool = False  # with `model: teacher`, the teacher is the same after the step
    makes_program: bool = False  # its model is a compiled program afterwards (no eager step may follow)
    reads_teacher: bool = False  # learns from the teacher's outputs: the teacher must be trained by then
    trains: bool = False  # fits its model to the labels: a teacher it acts on is trained afterwards

    def run(self, model: ModelHandle, ctx: StepContext, cfg: Any) -> StepOutput:
        """Run the step on ``model`` (refused with a clear message when the model is of a kind it cannot take)."""
        if self.needs_eager:
            from distillcli.steps.base import require_eager

            require_eager(model, self.name)
        return self.load()(model, ctx, cfg)


def _step(name: str, config: type[StepConfig], summary: str, **caps: bool) -> StepEntry:
    return StepEntry(name=name, target=f"distillcli.steps.{name}:{name}", summary=summary, config=config, **caps)


STEPS: Registry[StepEntry] = Registry("step", StepEntry, [
    _step("train", TrainConfig, "train on the labels", needs_eager=True, trains=True),
    _step("distill", DistillConfig, "train the student from the teacher", needs_eager=True, keeps_teacher=True,
          reads_teacher=True),
    _step("evaluate", EvaluateConfig, "measure accuracy, size and speed", keeps_teacher=True),
    _step("prune", PruneConfig, "remove channels or weights", needs_eager=True),
    _step("share", ShareConfig, "cluster weights into shared values", needs_eager=True),
    _step("quantize", QuantizeConfig, "int8 / bf16 / fp16", needs_eager=True, makes_program=True),
    _step("export", ExportConfig, "write ONNX, .pt2 or .aoti files", keeps_teacher=True),
    _step("sensitivity", SensitivityConfig, "measure each layer's pruning sensitivity", needs_eager=True,
          keeps_teacher=True),
], group="distillcli.steps")
