"""ONNX and .pt2 export: files run in their runtime with the model's outputs, carry the
header, keep a dynamic batch dimension, and load through `load_model` like any model file."""

from __future__ import annotations

import copy

import onnx
import onnxruntime
import pytest
import torch

from distillcli.compress.export import OnnxRunner, ProgramModule, agreement, export_model
from distillcli.compress.quantization import calibrate, convert, prepare
from distillcli.data import load_data
from distillcli.data.config import DataConfig
from distillcli.errors import CompressionError, ModelFileError, OptionError
from distillcli.modelfile import file_header, file_size, load_model
from distillcli.modelfile import onnx as onnx_file
from distillcli.losses import make_objective
from distillcli.measure import measure_model
from distillcli.models.build import build_model
from distillcli.models.handle import ArchSpec, ModelHandle
from distillcli.training.optim import OptimConfig
from distillcli.training.trainer import Trainer


@pytest.fixture(scope="module")
def data():
    cfg = DataConfig(name="synthetic", num_classes=4, image_size=16, train_size=128, val_size=64, batch_size=32)
    return load_data(cfg, device=torch.device("cpu"), seed=0)


@pytest.fixture(scope="module")
def handle(data) -> ModelHandle:
    torch.manual_seed(0)
    spec = ArchSpec("cnn", 4, 3, data.mean, data.std, {"width": 8})
    model = build_model(spec)
    Trainer(model, make_objective("ce"), data, OptimConfig(epochs=2, lr=0.05)).fit()
    return ModelHandle(model.eval(), spec)


@pytest.fixture(scope="module")
def images(data) -> torch.Tensor:
    return torch.cat([x for x, _, _ in data.val])


def _header(handle: ModelHandle, data) -> dict:
    return file_header(handle, class_names=data.class_names, input_shape=data.input_shape, data=data.spec,
                       metrics={"top1": 75.0})


@pytest.fixture(scope="module")
def fp32_onnx(handle, data, images, tmp_path_factory):
    return export_model(handle, _header(handle, data), tmp_path_factory.mktemp("onnx") / "model", "onnx", images[:16])


def test_fp32_onnx_matches_pytorch_and_carries_the_header(fp32_onnx, handle, data, images) -> None:
    result = fp32_onnx
    assert result.path.name == "model.onnx" and result.precision == "fp32"
    assert result.check["max_abs_diff"] < 1e-4 and result.check["top1_agreement"] == 100.0
    assert not result.path.with_name("model.onnx.data").exists()  # small weights stay inline
    loaded = load_model(result.path)
    assert loaded.handle.format == "onnx" and loaded.class_names == data.class_names
    assert loaded.metrics == {"top1": 75.0} and loaded.handle.precision == "fp32"
    runner = loaded.handle.module
    assert isinstance(runner, OnnxRunner)
    for batch in (1, 7):  # the batch dimension is dynamic
        with torch.no_grad():
            assert torch.allclose(runner(images[:batch]), handle.module(images[:batch]), atol=1e-4)


def test_onnxruntime_int8_agrees(fp32_onnx, handle, data, images, tmp_path) -> None:
    result = export_model(handle, _header(handle, data), tmp_path / "q.onnx", "onnx", images[:32], data.train, 2)
    assert result.precision == "int8" and load_model(result.path).metrics == {}
    assert result.check["top1_agreement"] >= 90 and result.check["min_cosine"] > 0.98
    assert result.file_bytes < fp32_onnx.file_bytes / 1.5  # int8 weights; the graph itself is a fixed cost
    types = {node.op_type for node in onnx.load(str(result.path)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= types


@pytest.mark.slow  # the recipe test in test_quant_step.py covers this path; this one checks the numbers closely
def test_pt2e_int8_program_exports_to_onnx(handle, data, images, tmp_path) -> None:
    prepared = prepare(copy.deepcopy(handle.module), "static", images[:2])
    calibrate(prepared, data.train, 2)
    program = ModelHandle(ProgramModule(convert(prepared, images[:2])), handle.arch, "pt2", "int8")
    result = export_model(program, _header(program, data), tmp_path / "int8", "onnx", images[:16])
    assert result.precision == "int8"
    assert agreement(program.module.uncompiled, load_model(result.path).handle.module, images)["min_cosine"] > 0.999


def test_fp32_pt2_program(handle, data, images, tmp_path) -> None:
    result = export_model(handle, _header(handle, data), tmp_path / "model", "pt2", images[:4])
    loaded = load_model(result.path)
    assert result.path.suffix == ".pt2" and loaded.handle.format == "pt2" and result.check["max_abs_diff"] < 1e-5
    with torch.no_grad():
        assert torch.allclose(loaded.handle.module(images[:3]), handle.module(images[:3]), atol=1e-5)


def test_large_models_keep_weights_beside_the_file(fp32_onnx, handle, images, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(onnx_file, "INLINE_LIMIT", 0)
    path = tmp_path / "big.onnx"
    onnx_file.write_onnx(onnx.load(str(fp32_onnx.path)), {"any": "header"}, path)
    assert (tmp_path / "big.onnx.data").is_file()
    assert file_size(path) == path.stat().st_size + (tmp_path / "big.onnx.data").stat().st_size
    with torch.no_grad():
        assert torch.allclose(OnnxRunner(path)(images[:4]), handle.module(images[:4]), atol=1e-4)
    (tmp_path / "big.onnx.data").unlink()
    with pytest.raises(ModelFileError, match="big.onnx.data, that file must be beside it"):
        OnnxRunner(path)


def test_external_data_outside_the_folder_is_refused(fp32_onnx, tmp_path) -> None:
    path = tmp_path / "m.onnx"
    onnx.save_model(onnx.load(str(fp32_onnx.path)), str(path), save_as_external_data=True, location="w.data")
    proto = onnx.load(str(path), load_external_data=False)
    for tensor in proto.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = "../w.data"
    onnx.save_model(proto, str(path))
    with pytest.raises(ModelFileError, match="outside its folder"):
        load_model(path)


def test_bad_requests(fp32_onnx, handle, data, images, tmp_path) -> None:
    with pytest.raises(OptionError, match="unknown export format"):
        export_model(handle, _header(handle, data), tmp_path / "x", "tflite", images[:2])
    with pytest.raises(OptionError, match="--int8 applies to --format onnx"):
        export_model(handle, _header(handle, data), tmp_path / "x", "pt2", images[:2], data.train)
    with pytest.raises(CompressionError, match="already an ONNX file"):
        export_model(load_model(fp32_onnx.path).handle, _header(handle, data), tmp_path / "again", "onnx", images[:2])


def test_model_files_are_measured_where_they_compute(fp32_onnx, handle, data, images, tmp_path, monkeypatch) -> None:
    """A run on CUDA measures a .pt2 program or a CPU-only ONNX session on the CPU, where it computes,
    and records that device and its runtime, not the run's device (here: no GPU, so timing on the
    requested device would fail outright)."""
    program = load_model(export_model(handle, _header(handle, data), tmp_path / "p", "pt2", images[:4]).path)
    runner = load_model(fp32_onnx.path).handle.module
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: ["CPUExecutionProvider"])
    runner.place_on(torch.device("cuda"))  # an onnxruntime with only the CPU provider: the session stays
    for module, runtime in ((program.handle.module, "torch.export program"),
                            (runner, "onnxruntime CPUExecutionProvider")):
        got = measure_model(module, data.val, 4, data.input_shape, torch.device("cuda"), latency_batches=(2,),
                            repeats=2)
        assert got["device"] == "cpu" and got["runtime"] == runtime and got["latency_ms"]["2"] > 0
        assert got["top1"] is not None


def test_onnx_on_cuda_asks_for_tensorrt_then_cuda_then_the_cpu() -> None:
    every = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    assert onnx_file.providers_for(torch.device("cuda", 1), every) == [
        ("TensorrtExecutionProvider", {"device_id": 1}), ("CUDAExecutionProvider", {"device_id": 1}),
        "CPUExecutionProvider"]
    assert onnx_file.providers_for(torch.device("cuda"), every[1:]) == [("CUDAExecutionProvider", {"device_id": 0}),
                                                                      "CPUExecutionProvider"]
    assert onnx_file.providers_for(torch.device("cuda"), every[2:]) == ["CPUExecutionProvider"]
    assert onnx_file.providers_for(torch.device("cpu"), every) == ["CPUExecutionProvider"]
