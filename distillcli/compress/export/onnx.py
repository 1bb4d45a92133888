"""ONNX export: fp32, int8 from a PT2E program, or int8 QDQ by onnxruntime. The file is written by ``modelfile.onnx`` (header in metadata_props, external data for
large models).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Iterable

import torch
from torch import Tensor, nn

from distillcli.compress.export.program import cpu_copy
from distillcli.compress.quantization.target import int8_plan
from distillcli.errors import CompressionError
from distillcli.facts import Precision
from distillcli.modelfile.header import header_fields
from distillcli.modelfile.onnx import INPUT, OUTPUT, write_onnx
from distillcli.modelfile.program import ProgramModule
from distillcli.models.handle import ModelHandle
from distillcli.quiet import quiet


def _to_onnx(source: nn.Module | torch.export.ExportedProgram, example: Tensor) -> Any:
    """The model as an ONNX ModelProto with a dynamic batch dimension."""
    dynamic = None if isinstance(source, torch.export.ExportedProgram) else ({0: torch.export.Dim("batch")},)
    try:
        with quiet(capture_stdout=True):
            program = torch.onnx.export(source, (example,), dynamo=True, dynamic_shapes=dynamic, input_names=[INPUT],
                                        output_names=[OUTPUT], external_data=False)
    except Exception as e:
        raise CompressionError(f"the ONNX exporter failed: {str(e).strip().splitlines()[0][:300]}",
                               "rerun with DISTILL_DEBUG=1 for the trace; `--format pt2` keeps any PyTorch model") from None
    return program.model_proto


def _ort_int8(fp32: Path, out: Path, batches: Iterable[tuple[Tensor, Tensor, Tensor]], limit: int,
              reduce_range: bool) -> None:
    """onnxruntime static int8: QDQ format, weights int8 per channel, activations uint8 (the
    fast combination on VNNI CPUs; without VNNI, 7-bit weights: ``reduce_range``, as onnxruntime
    advises there), min/max calibration on ``limit`` batches."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quant_pre_process, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = (b[0] for i, b in enumerate(batches) if i < limit)

        def get_next(self) -> dict[str, Any] | None:
            images = next(self.batches, None)
            return None if images is None else {INPUT: images.to("cpu", torch.float32).contiguous().numpy()}

    prepared = fp32.with_name(fp32.stem + "-prep.onnx")
    with quiet(capture_stdout=True):
        quant_pre_process(str(fp32), str(prepared))
        quantize_static(str(prepared), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, reduce_range=reduce_range)


def export_onnx(handle: ModelHandle, header: dict[str, Any], path: Path, example: Tensor,
                calibration: Iterable[tuple[Tensor, Tensor, Tensor]] | None = None,
                calibration_batches: int = 16) -> Precision:
    """Write ``handle`` as ONNX to ``path``; with ``calibration``, quantized to int8 by
    onnxruntime. Returns the precision written (fp32, int8, bf16 ...), which the header's
    info records; an int8 file keeps none of the source's metrics (they no longer apply)."""
    import onnx

    module = handle.module
    source = module.program if isinstance(module, ProgramModule) else cpu_copy(module).eval()
    precision = handle.precision
    if calibration is not None and precision != "fp32":
        raise CompressionError(f"the model is already {precision}; onnxruntime int8 starts from an fp32 model",
                               "export the fp32 model with --int8, or export this one without --int8")
    proto = _to_onnx(source, example.to("cpu"))
    facts = handle.info
    if calibration is not None:
        plan = int8_plan()  # this machine's: the export step has no target option
        with tempfile.TemporaryDirectory() as tmp:
            fp32, int8 = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
            onnx.save_model(proto, str(fp32))
            _ort_int8(fp32, int8, calibration, calibration_batches, plan.reduce_range)
            proto = onnx.load(str(int8))
        precision = "int8"
        facts = facts.model_copy(update=plan.info())
    write_onnx(proto, {**header, **header_fields("onnx", precision, facts),
                       "metrics": {} if calibration else header.get("metrics", {})}, path)
    return precision
