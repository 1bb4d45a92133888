"""Sensitivity analysis as a step: prune each layer alone at several ratios, measure accuracy,
write sensitivity.csv / .png into the run's sensitivity/ folder, and suggest per-layer
ratios (``overrides:`` for a later prune step). The model is handed on unchanged."""

from __future__ import annotations

from pydantic import Field, PositiveInt, field_validator

from distillcli.compress.pruning import ImportanceName, analyse
from distillcli.errors import OptionError
from distillcli.models.handle import ModelHandle
from distillcli.steps.base import StepConfig, StepContext, StepOutput, prepare, require_eager, step


class SensitivityConfig(StepConfig):
    ratios: list[float] = Field(default_factory=lambda: [0.25, 0.5, 0.75], min_length=1, max_length=20,
                                description="fractions of a layer's channels to remove, each in (0, 1)")
    importance: ImportanceName = Field("l1", description="channel score: l1 | l2 | bn_scale | taylor")
    ignore: list[str] = Field(default_factory=list, description="layers (wildcards) to skip; 'stem' = first conv")
    budget: float = Field(1.0, ge=-100, le=100, description="accuracy drop (percentage points) allowed per layer "
                                                          "in the suggested overrides")
    importance_batches: PositiveInt = Field(8, le=10_000, description="taylor: batches whose gradients score channels")

    @field_validator("ratios")
    @classmethod
    def _fractions(cls, v: list[float]) -> list[float]:
        if not all(0 < r < 1 for r in v):
            raise ValueError("every ratio must be in (0, 1), e.g. [0.25, 0.5, 0.75]")
        return v


@step("sensitivity", SensitivityConfig)
def sensitivity(model: ModelHandle, ctx: StepContext, cfg: SensitivityConfig) -> StepOutput:
    """Prune each layer alone at several ratios; write a CSV, a plot and suggested per-layer ratios."""
    require_eager(model, "sensitivity")
    if ctx.workdir is None:
        raise OptionError("the sensitivity step writes files, and there is no folder for them here",
                          "run it from a recipe, or use `distill sensitivity MODEL --out DIR`")
    module = prepare(model.module, ctx)
    result = analyse(module, ctx.data, ctx.device, cfg.ratios, cfg.importance, cfg.ignore, cfg.importance_batches,
                     progress=ctx.progress)
    folder = ctx.workdir / "sensitivity"
    result.write_csv(folder / "sensitivity.csv")
    result.plot(folder / "sensitivity.png")
    suggested = result.suggest(cfg.budget)
    info = {"baseline_top1": result.baseline_top1, "budget": cfg.budget, "suggested_overrides": suggested,
            "rows": [vars(r) for r in result.rows], "csv": str(folder / "sensitivity.csv"),
            "plot": str(folder / "sensitivity.png")}
    return StepOutput(model, info=info)
