"""The chosen candidate, once: measured on the test split beside the starting model (the only
time the search looks at it), copied out as best.pt / best.pt2, and its recipe as best.yaml."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from distillcli.atomic_write import atomic_path
from distillcli.auto.score import step_cost
from distillcli.auto.search import CANDIDATE_RECIPE, SearchResult
from distillcli.engine.rundir import link_model
from distillcli.record import StepRecord


def measure_final(result: SearchResult, model_file: Path) -> dict[str, Any]:
    """Top-1 and cost of the starting model and of ``model_file`` on the test split, in one process."""
    from distillcli.engine.pipeline import Pipeline
    from distillcli.progress import SilentProgress
    from distillcli.recipe import validate_raw

    cfg, base = result.cfg, result.base
    recipe = {**base, "name": f"{base.get('name', 'auto')}-test", "student": {"checkpoint": str(model_file)},
              "steps": [{"evaluate": {}}],
              "report": {"latency": cfg.objective == "latency", "latency_batches": [cfg.batch_size],
                         "latency_repeats": cfg.latency_repeats, "save_models": False}}
    record = Pipeline(validate_raw(recipe, source="the final measurement"), SilentProgress(), persist=False).run().record
    assert record.baseline is not None and result.chosen is not None
    start, chosen = record.baseline.measures, record.steps[-1]
    start_cost = step_cost(StepRecord(index=0, kind="evaluate", target="teacher", measures=start), cfg.objective,
                           cfg.batch_size)
    # size: the Deep Compression bytes of the chosen trial (the file holds float weights); else measured here
    cost = result.chosen.get("cost") if cfg.objective == "size" else step_cost(chosen, cfg.objective, cfg.batch_size)
    if cfg.objective == "macs" and cost is None:
        cost = result.chosen.get("cost")  # a program has no MAC count: the float model's, measured in the trial
    return {"split": "test", "samples": chosen.measures.samples,
            "start": {"top1": start.top1, "cost": start_cost},
            "chosen": {"top1": chosen.measures.top1, "cost": cost},
            "drop": (start.top1 or 0.0) - (chosen.measures.top1 or 0.0),
            "cost_ratio": cost / start_cost if cost and start_cost else None}


def publish_best(result: SearchResult) -> tuple[Path, Path]:
    """best.yaml (the chosen trial's resolved recipe, verbatim; its whole one when its run started
    from another trial's model) and best.<suffix> (its model)."""
    assert result.chosen is not None
    run_dir, model = result.path(result.chosen.get("run_dir")), result.path(result.chosen.get("model_file"))
    whole = run_dir / CANDIDATE_RECIPE
    recipe = result.out / "best.yaml"
    with atomic_path(recipe) as tmp:
        shutil.copyfile(whole if whole.is_file() else run_dir / "recipe.yaml", tmp)
    target = result.out / f"best{model.suffix}"
    link_model(model, target)
    return recipe, target
