"""The quantize, share and export steps: options, QAT, and a recipe that chains them."""

from __future__ import annotations

import json

import pytest
import torch
from pydantic import ValidationError

from distillcli.modelfile import load_model
from distillcli.errors import OptionError
from distillcli.measure import evaluate
from distillcli.models.build import build_model
from distillcli.models.handle import ArchSpec, ModelHandle
from distillcli.engine.pipeline import Pipeline
from distillcli.progress import SilentProgress
from distillcli.recipe import load_recipe, validate_raw
from distillcli.steps import STEPS, StepContext
from distillcli.steps.export import ExportConfig
from distillcli.steps.quantize import QuantizeConfig
from tests.conftest import tiny_synthetic
from tests.conftest import tiny_recipe


@pytest.mark.parametrize("options, message", [
    ({"method": "static", "epochs": 2}, "training options apply to method qat only"),
    ({"method": "dynamic", "calibration_batches": 4}, "calibration_batches applies to method static only"),
    ({"method": "bf16", "skip": ["net.conv1"]}, "skip applies to the int8 methods only"),
    ({"method": "int4"}, "Input should be"),
])
def test_quantize_options(options, message) -> None:
    with pytest.raises(ValidationError, match=message):
        QuantizeConfig(**options)


def test_export_options() -> None:
    with pytest.raises(ValidationError, match="int8 applies to format onnx"):
        ExportConfig(format="pt2", int8=True)


@pytest.fixture(scope="module")
def data():
    return tiny_synthetic()


def _trained(data) -> ModelHandle:
    torch.manual_seed(0)
    spec = ArchSpec("cnn", 4, 3, data.mean, data.std, {"width": 8})
    handle = ModelHandle(build_model(spec), spec)
    ctx = StepContext(device=torch.device("cpu"), data=data)
    return STEPS.get("train").run(handle, ctx, STEPS.get("train").config(epochs=3, lr=0.05)).model


@pytest.mark.slow  # torchao folds conv-bn for QAT by exporting ~100 pattern graphs: ~15 s fixed
def test_qat_finetunes_then_converts(data) -> None:
    model = _trained(data)
    before = evaluate(model.module, data.val, 4)["top1"]
    ctx = StepContext(device=torch.device("cpu"), data=data)
    out = STEPS.get("quantize").run(model, ctx, QuantizeConfig(method="qat", epochs=1, compile=False))
    assert out.model.precision == "int8" and len(out.curve) == 1
    assert out.info.int8_layers == 4 and out.info.compiled is False
    assert evaluate(out.model.module, data.val, 4)["top1"] >= before - 5
    with pytest.raises(OptionError, match="this one is .int8."):
        STEPS.get("quantize").run(out.model, ctx, QuantizeConfig())


def test_fp16_computes_in_float16_when_made_in_a_cuda_run(data) -> None:
    """The dtype follows the run's device: no GPU here, but the fp16 path builds its program on the
    CPU whatever the device, so a context naming CUDA shows the choice."""
    model = _trained(data)
    for device, dtype in (("cpu", torch.float32), ("cuda", torch.float16)):
        ctx = StepContext(device=torch.device(device), data=data)
        out = STEPS.get("quantize").run(model, ctx, QuantizeConfig(method="fp16"))
        program = out.model.module.program
        assert out.info.computes_in == str(dtype).removeprefix("torch.") and out.model.precision == "fp16"
        assert {n.meta["val"].dtype for n in program.graph.nodes if n.target == torch.ops.aten.conv2d.default} == {dtype}


def test_recipe_share_quantize_export(write_recipe, tmp_path) -> None:
    """The three steps from a recipe; the export step writes the int8 program as ONNX (QDQ)."""
    recipe = tiny_recipe(
        teacher=None, student={"arch": "cnn", "args": {"width": 8}},
        data={"name": "synthetic", "batch_size": 32, "train_size": 64, "val_size": 32, "num_classes": 4,
              "image_size": 16},
        steps=[{"share": {"clusters": 8, "epochs": 1, "lr": 0.001}},
               {"quantize": {"method": "static", "calibration_batches": 2, "compile": False}},
               {"export": {"format": "onnx"}}],
        report={"latency": False})
    result = Pipeline(load_recipe(write_recipe(recipe)), SilentProgress(), out=tmp_path / "run").run()
    steps = {s["kind"]: s for s in result.record.to_json()["steps"]}
    share = steps["share"]["info"]
    assert share["shared_layers"] == 4 and share["huffman_ratio"] > share["shared_ratio"] > 4
    assert steps["quantize"]["model_file"] == "models/01-quantize-student.pt2"
    quantized = steps["quantize"]["info"]
    assert quantized["method"] == "static" and quantized["calibration_images"] == 64
    assert quantized["int8_layers"] == 4 and quantized["int8_weight_share"] > 0.95 and quantized["compiled"] is False
    export = steps["export"]["info"]
    assert export["file"] == "exports/student-int8.onnx" and export["precision"] == "int8"
    assert export["min_cosine"] > 0.99 and export["top1"] == pytest.approx(steps["export"]["measures"]["top1"], abs=10)
    student = load_model(result.run_dir / "models" / "student.pt2")
    assert student.handle.precision == "int8" and student.handle.info.method == "static"
    assert "## step 0: share" in (result.run_dir / "report.md").read_text()
    assert json.loads((result.run_dir / "metrics.json").read_text())["steps"][0]["info"]["size_layers"]


def test_recipe_exports_and_measures_an_aoti_package(tmp_path) -> None:
    """An export step may write an .aoti package: the run wrote it, so the run loads it to measure it
    (only files from elsewhere need --allow-native); it agrees with the int8 program."""
    recipe = tiny_recipe(
        teacher=None, student={"arch": "cnn", "args": {"width": 8}},
        steps=[{"quantize": {"method": "static", "calibration_batches": 2}}, {"export": {"format": "aoti"}}],
        report={"latency": False})
    result = Pipeline(validate_raw(recipe), SilentProgress(), out=tmp_path / "run").run()
    quantize, export = result.record.steps
    assert export.info.file == "exports/student-int8.aoti" and export.info.precision == "int8"
    assert export.info.top1_agreement == 100.0
    assert export.info.top1 == pytest.approx(quantize.measures.top1, abs=3.2)  # 64 images: at most 2 differ
