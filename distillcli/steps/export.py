"""Export: write the model as ONNX or a torch.export program into the run directory, checked
against the model and measured under its runtime. The model is handed on unchanged."""

from __future__ import annotations

import torch

from distillcli.facts import ExportFacts
from distillcli.modelfile import file_header, load_model
from distillcli.modelfile.native import allow_native
from distillcli.compress.export import export_model
from distillcli.errors import OptionError
from distillcli.measure import measure_model
from distillcli.models.handle import ModelHandle
from distillcli.steps.base import StepContext, StepOutput
from distillcli.steps.options import ExportConfig


def export(model: ModelHandle, ctx: StepContext, cfg: ExportConfig) -> StepOutput:
    """Write the model as ONNX (fp32 or onnxruntime int8), .pt2 or .aoti into the run's exports/."""
    if ctx.exports_dir is None:
        raise OptionError("the export step writes into the run directory, and there is none here",
                          "run it from a recipe, or use `distill export MODEL --format onnx --out FILE`")
    precision = "int8" if cfg.int8 else model.precision
    path = ctx.exports_dir / (cfg.name or f"{cfg.model}-{precision}.{cfg.format}")
    n = 2
    while cfg.name is None and path.exists():  # a second export of the same kind in one run
        path, n = path.with_name(f"{cfg.model}-{precision}-{n}.{cfg.format}"), n + 1
    path.parent.mkdir(parents=True, exist_ok=True)
    data = ctx.data
    header = file_header(model, class_names=data.class_names, input_shape=data.input_shape, data=data.spec)
    example = next(iter(data.val))[0][:64].to("cpu")
    result = export_model(model, header, path, cfg.format, example, data.train if cfg.int8 else None,
                          cfg.calibration_batches)
    inside = ctx.workdir is not None and result.path.is_relative_to(ctx.workdir)
    file = str(result.path.relative_to(ctx.workdir) if inside else result.path)
    measured: dict[str, float] = {}
    if cfg.evaluate:
        with allow_native():  # written by this step just now
            runner = load_model(result.path).handle.module
        m = measure_model(runner, data.val, data.num_classes, data.input_shape, torch.device("cpu"))
        measured = {"top1": m["top1"], **{f"ms_b{b}": v for b, v in m["latency_ms"].items()}}
    return StepOutput(model, info=ExportFacts(**{**result.summary(), "file": file, **measured}))
