"""ONNX files: export (fp32, int8 from a PT2E program, or int8 QDQ by onnxruntime), and a
runner so ``distill eval model.onnx`` measures them under onnxruntime.

The distillcli header (arch, classes, data, metrics, recipe) is stored as JSON in the model's
``metadata_props["distillcli"]``. Weights are saved inside the file up to 1 GiB; beyond that
(protobuf stops at 2 GiB) they go to ``FILE.onnx.data`` beside it, and the two files must
travel together.

Safety: an ONNX file is a protobuf graph of standard operators; onnxruntime runs it without
executing code from the file (no custom-operator libraries are registered here). The loader
also refuses external-data locations that leave the model's folder.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any, Iterable, cast

import torch
from torch import Tensor, nn

from distillcli.artifact import ModelFile, _check_format, register_kind
from distillcli.compress.export.program import ProgramModule, cpu_copy
from distillcli.compress.export.quiet import quiet
from distillcli.errors import CompressionError, ModelFileError
from distillcli.fileio import atomic_path
from distillcli.models.classifier import ArchSpec, ModelHandle

META_KEY = "distillcli"
INPUT, OUTPUT = "images", "logits"
INLINE_LIMIT = 1 << 30


class OnnxRunner:
    """Calls an onnxruntime CPU session like a model: float32 NCHW images in, logits out.

    Not an nn.Module: it has no parameters to count, and measure skips params / MACs for it
    (the header keeps those of the source model).
    """

    def __init__(self, path: Path) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        options.log_severity_level = 3
        self.path = path
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as e:
            raise ModelFileError(f"onnxruntime cannot load {path}: {str(e).splitlines()[0][:200]}",
                                 f"if the model keeps its weights in {path.name}.data, that file must be beside it")
        self.input = self.session.get_inputs()[0].name

    def __call__(self, images: Tensor) -> Tensor:
        feed = {self.input: images.detach().to("cpu", torch.float32).contiguous().numpy()}
        return torch.from_numpy(self.session.run(None, feed)[0])


def _write(proto: Any, header: dict[str, Any], path: Path) -> None:
    """Set the header and save; weights inline when small enough, else in PATH.data."""
    import onnx

    del proto.metadata_props[:]
    proto.metadata_props.add(key=META_KEY, value=json.dumps(header))
    external = proto.ByteSize() > INLINE_LIMIT
    data = path.with_name(path.name + ".data")
    if data.exists():
        data.unlink()
    with atomic_path(path) as tmp:
        onnx.save_model(proto, str(tmp), save_as_external_data=external, all_tensors_to_one_file=True,
                        location=data.name)


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


def _ort_int8(fp32: Path, out: Path, batches: Iterable[tuple[Tensor, Tensor, Tensor]], limit: int) -> None:
    """onnxruntime static int8: QDQ format, weights int8 per channel, activations uint8 (the
    fast combination on VNNI CPUs), min/max calibration on ``limit`` batches."""
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
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)


def export_onnx(handle: ModelHandle, header: dict[str, Any], path: Path, example: Tensor,
                calibration: Iterable[tuple[Tensor, Tensor, Tensor]] | None = None,
                calibration_batches: int = 16) -> str:
    """Write ``handle`` as ONNX to ``path``; with ``calibration``, quantized to int8 by
    onnxruntime. Returns the precision written (fp32, int8, bf16 ...), which the header's
    info records; an int8 file keeps none of the source's metrics (they no longer apply)."""
    import onnx

    module = handle.module
    source = module.program if isinstance(module, ProgramModule) else cpu_copy(module).eval()
    precision = "fp32" if handle.kind in ("eager", "pt2") else handle.kind
    if calibration is not None and precision != "fp32":
        raise CompressionError(f"the model is already {precision}; onnxruntime int8 starts from an fp32 model",
                               "export the fp32 model with --int8, or export this one without --int8")
    proto = _to_onnx(source, example.to("cpu"))
    if calibration is not None:
        with tempfile.TemporaryDirectory() as tmp:
            fp32, int8 = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
            onnx.save_model(proto, str(fp32))
            _ort_int8(fp32, int8, calibration, calibration_batches)
            proto = onnx.load(str(int8))
        precision = "int8"
    info = {**header.get("info", {}), "precision": precision}
    _write(proto, {**header, "kind": "onnx", "info": info, "metrics": {} if calibration else header.get("metrics", {})},
           path)
    return precision


def _check_external_data(proto: Any, path: Path) -> None:
    for tensor in proto.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location" and (Path(entry.value).name != entry.value or entry.value in ("", ".", "..")):
                raise ModelFileError(f"refused to load {path}: its weights point outside its folder ({entry.value!r})",
                                     "only load ONNX files written by distillcli or from a source you trust")


def load_onnx(path: Path) -> ModelFile:
    """Read a distillcli ONNX file: header from metadata_props, an onnxruntime session to run it."""
    import onnx

    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"model file not found: {path}", "check the path")
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as e:
        raise ModelFileError(f"cannot read {path}: not an ONNX file ({str(e).splitlines()[0][:160]})",
                             "re-create the file; a partial copy is the usual cause") from None
    _check_external_data(proto, path)
    meta = {p.key: p.value for p in proto.metadata_props}
    if META_KEY not in meta:
        raise ModelFileError(f"{path} is an ONNX model without a distillcli header",
                             "export models with `distill export MODEL --format onnx`")
    header = json.loads(meta[META_KEY])
    _check_format(header, path)
    runner = OnnxRunner(path)
    handle = ModelHandle(cast(nn.Module, runner), ArchSpec.from_dict(header["arch"]), "onnx", header.get("info", {}))
    return ModelFile(handle, header["class_names"], tuple(header["input_shape"]), header.get("data", {}),
                     header.get("metrics", {}), header.get("recipe", {}), path)


def save_onnx(handle: ModelHandle, header: dict[str, Any], path: Path) -> None:
    """Re-save a loaded ONNX model with a new header (its graph and weights unchanged)."""
    import onnx

    runner = cast(OnnxRunner, handle.module)
    _write(onnx.load(str(runner.path)), header, path)


register_kind("onnx", ".onnx", save_onnx, load_onnx)
