"""One entry point for `distill export` and the export step: write a model as ONNX, as a
torch.export program or as an AOTInductor package of that program, reload the file through its registered format, and check it against
the source model on the same images (an fp32 export must match to 1e-3 of the logit scale)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Iterable

import torch
from torch import Tensor, nn

from distillcli.facts import Precision
from distillcli.modelfile import file_header, load_model, ModelFile, save_model
from distillcli.modelfile.header import header_fields
from distillcli.compress.export.check import agreement, matches
from distillcli.compress.export.onnx import export_onnx
from distillcli.compress.export.program import as_program
from distillcli.modelfile.formats import exportable
from distillcli.modelfile.native import allow_native
from distillcli.modelfile.program import ProgramModule
from distillcli.errors import CompressionError, OptionError
from distillcli.modelfile import file_size
from distillcli.models.handle import ModelHandle

@dataclass
class ExportResult:
    path: Path
    format: str
    precision: Precision
    file_bytes: int
    check: dict[str, float]  # agreement with the source model (see check.agreement)

    def summary(self) -> dict[str, Any]:
        return {"file": str(self.path), "format": self.format, "precision": self.precision,
                "file_bytes": self.file_bytes, **self.check}


def _plain(module: Any) -> Callable[[Tensor], Tensor]:
    """The model as a function of CPU images, without compiling a program for the check."""
    if isinstance(module, ProgramModule):
        return module.uncompiled
    if not isinstance(module, nn.Module):  # an onnxruntime runner
        return module
    param = next(iter(module.parameters()), None)
    device = param.device if param is not None else torch.device("cpu")
    return lambda x: module(x.to(device))


def export_model(handle: ModelHandle, header: dict[str, Any], out: str | Path, fmt: str, example: Tensor,
                 calibration: Iterable[tuple[Tensor, Tensor, Tensor]] | None = None,
                 calibration_batches: int = 16) -> ExportResult:
    """Write ``handle`` to ``out`` (suffix set by ``fmt``); ``calibration`` makes an onnxruntime
    int8 file. ``example`` (CPU images) is both the export's sample input and the check batch."""
    if fmt not in exportable():
        raise OptionError(f"unknown export format {fmt!r}", f"choose one of {', '.join(exportable())}")
    if handle.format == "onnx":
        raise CompressionError("the model is already an ONNX file", "export its source model (.pt or .pt2) instead")
    path = Path(out).with_suffix(f".{fmt}")
    example = example.to("cpu")
    if fmt in ("pt2", "aoti"):
        if calibration is not None:
            raise OptionError("--int8 applies to --format onnx",
                              f"for an int8 {fmt} file, quantize first (`distill quantize MODEL --method static`) "
                              "and export the .pt2 it writes")
        program = as_program(handle, example)
        precision = program.precision
        if fmt == "aoti":
            program = replace(program, format="aoti")
        save_model(path, program, {**header, **header_fields(program.format, precision, program.info)})
    else:
        precision = export_onnx(handle, header, path, example, calibration, calibration_batches)
    with allow_native():  # written by this process just now
        exported = load_model(path).handle.module
    try:
        result = agreement(_plain(handle.module), _plain(exported), example)
    except Exception as e:
        raise CompressionError(f"{path} was written but its runtime cannot run it: {str(e).splitlines()[0][:200]}",
                               "export the fp32 model instead (onnxruntime's CPU kernels lack some dtypes)") from None
    if handle.format in ("eager", "pt2") and handle.precision == precision == "fp32" and not matches(result):
        raise CompressionError(f"the exported file disagrees with the model: max |logit difference| "
                               f"{result['max_abs_diff']:.3g} on {result['images']} images",
                               "this is a bug in the exporter or distillcli; try the other format and report it")
    return ExportResult(path, fmt, precision, file_size(path), result)


def export_file(model_file: ModelFile, fmt: str, out: str | Path,
                calibration: Iterable[tuple[Tensor, Tensor, Tensor]] | None = None,
                calibration_batches: int = 16) -> ExportResult:
    """`distill export`: a loaded model file to ``out``. The check batch is the first
    calibration batch, or 16 fixed random images when there is no data."""
    handle = model_file.handle
    if calibration is not None:
        example = next(iter(calibration))[0][:64]
    else:
        example = torch.rand(16, *model_file.input_shape, generator=torch.Generator().manual_seed(0))
    header = file_header(handle, class_names=model_file.class_names, input_shape=model_file.input_shape,
                         data=model_file.data, metrics=model_file.metrics, recipe=model_file.recipe)
    return export_model(handle, header, out, fmt, example, calibration, calibration_batches)
