"""Sensitivity analysis as a step: prune each layer alone at several ratios, measure accuracy,
write sensitivity.csv / .png into the run's sensitivity/ folder, and suggest per-layer
ratios (``overrides:`` for a later prune step). The model is handed on unchanged."""

from __future__ import annotations

from distillcli.compress.pruning import analyse
from distillcli.errors import OptionError
from distillcli.facts import SensitivityFacts
from distillcli.models.handle import ModelHandle
from distillcli.steps.base import StepContext, StepOutput, prepare
from distillcli.steps.options import SensitivityConfig


def sensitivity(model: ModelHandle, ctx: StepContext, cfg: SensitivityConfig) -> StepOutput:
    """Prune each layer alone at several ratios; write a CSV, a plot and suggested per-layer ratios."""
    if ctx.workdir is None:
        raise OptionError("the sensitivity step writes files, and there is no folder for them here",
                          "run it from a recipe, or use `distill sensitivity MODEL --out DIR`")
    module = prepare(model.module, ctx)
    result = analyse(module, ctx.data, ctx.device, cfg.ratios, cfg.importance, cfg.ignore, cfg.importance_batches,
                     progress=ctx.progress)
    folder = ctx.workdir / "sensitivity"
    result.write_csv(folder / "sensitivity.csv")
    result.plot(folder / "sensitivity.png")
    suggested = result.suggest(cfg.max_drop)
    info = SensitivityFacts(baseline_top1=result.baseline_top1, max_drop=cfg.max_drop, suggested_overrides=suggested,
                            rows=[vars(r) for r in result.rows], csv=str(folder / "sensitivity.csv"),
                            plot=str(folder / "sensitivity.png"))
    return StepOutput(model, info=info)
