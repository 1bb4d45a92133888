"""The Python API: what the commands do, callable from a notebook or a script.

    from distillcli import api

    base = api.evaluate("teacher.pt", data="cifar10", data_root="data/")
    small = api.prune("teacher.pt", api.PruneConfig(sparsity=0.5, finetune={"epochs": 2}), out="pruned.pt")
    fast = api.quantize(small.output, api.QuantizeConfig(method="static"), out="pruned-int8.pt2")
    print(base.after.top1, small.after.top1, fast.after.top1, fast.after.latency_ms)

Every function takes a model file (a path, or the result of an earlier call) and the step's options
object (or a dict of its fields), runs the step through the same engine as the CLI (a one-step recipe,
measured the same way), and returns a ``FileRun``: ``before`` / ``after`` measures, ``info`` (what the
step did: its ``distillcli.facts`` model, e.g. ``info.mac_reduction``), ``model`` (the resulting model in
memory), ``output`` (the file written, when ``out`` is given) and ``record`` (the typed run record).
``data`` / ``data_root`` replace the data the file records. ``run`` runs a whole recipe.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from distillcli.engine.file_recipe import FileRun, run_on_file
from distillcli.progress import Progress, SilentProgress
from distillcli.steps.options import (DistillConfig, EvaluateConfig, ExportConfig, PruneConfig, QuantizeConfig,
                                      StepConfig)

Model = str | Path | FileRun


def load_model(path: str | Path, trust_code: bool = False) -> Any:
    """A model file as a ``ModelFile`` (``.handle.module`` is the model, in eval mode on the CPU)."""
    from distillcli.modelfile import load_model as load
    from distillcli.models.sources import trusting_code

    with trusting_code(trust_code):
        return load(Path(path))


def _path(model: Model) -> Path:
    if isinstance(model, FileRun):
        if model.output is None:
            raise ValueError("this result wrote no file: give out= to the call that made it")
        return model.output
    return Path(model)


def _options(config: StepConfig | dict[str, Any] | None, kind: type[StepConfig], given: dict[str, Any]) -> StepConfig:
    if isinstance(config, StepConfig):
        return config.model_copy(update=given) if given else config
    return kind(**{**(config or {}), **given})


def _on_file(kind: str, model: Model, options: StepConfig, out: str | Path | None, progress: Progress | None,
             engine: dict[str, Any]) -> FileRun:
    return run_on_file(_path(model), kind, options, progress or SilentProgress(),
                       output=Path(out) if out is not None else None, **engine)


def evaluate(model: Model, *, progress: Progress | None = None, **engine: Any) -> FileRun:
    """Accuracy, size, MACs and latency of a model file (``engine``: data, data_root, device, threads,
    latency, val_subset, trust_code ...)."""
    return _on_file("evaluate", model, EvaluateConfig(), None, progress, engine)


def prune(model: Model, config: PruneConfig | dict[str, Any] | None = None, *, out: str | Path | None = None,
          progress: Progress | None = None, **engine: Any) -> FileRun:
    return _on_file("prune", model, _options(config, PruneConfig, {}), out, progress, engine)


def quantize(model: Model, config: QuantizeConfig | dict[str, Any] | None = None, *, out: str | Path | None = None,
             progress: Progress | None = None, **engine: Any) -> FileRun:
    return _on_file("quantize", model, _options(config, QuantizeConfig, {}), out, progress, engine)


def export(model: Model, config: ExportConfig | dict[str, Any] | None = None, *, folder: str | Path = ".",
           progress: Progress | None = None, **engine: Any) -> FileRun:
    """Write the export into ``folder`` (its name: ``config.name``); ``info.file`` says where."""
    return run_on_file(_path(model), "export", _options(config, ExportConfig, {}), progress or SilentProgress(),
                       workdir=Path(folder).resolve(), **engine)


def distill(student: Model, teacher: Model, config: DistillConfig | dict[str, Any] | None = None, *,
            data: dict[str, Any], out: str | Path | None = None, device: str = "auto",
            progress: Progress | None = None) -> Any:
    """Distil the teacher file into the student file on ``data`` (a recipe's ``data:`` section); returns
    the run's result (``.record``, ``.student``, ``.run_dir``)."""
    options = _options(config, DistillConfig, {})
    recipe = {"name": "distill", "device": device, "data": data, "teacher": {"checkpoint": str(_path(teacher))},
              "student": {"checkpoint": str(_path(student))},
              "steps": [{"distill": options.model_dump(mode="json", exclude_unset=True)}]}
    return run(recipe, out=out, progress=progress)


def run(recipe: str | Path | dict[str, Any], *, out: str | Path | None = None, overrides: list[str] | None = None,
        progress: Progress | None = None, resume: bool = False, force: bool = False) -> Any:
    """Run a recipe (a file, or its contents as a dict) as `distill run` does; returns the run's result."""
    from distillcli.engine.pipeline import Pipeline
    from distillcli.recipe import apply_override, load_recipe, validate_raw

    if isinstance(recipe, dict):
        raw = dict(recipe)
        for assignment in overrides or []:
            apply_override(raw, assignment)
        r = validate_raw(raw, source="recipe")
    else:
        r = load_recipe(recipe, overrides or [])
    return Pipeline(r, progress or SilentProgress(), out=out, resume=resume, force=force).run()
