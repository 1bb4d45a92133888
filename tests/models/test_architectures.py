"""The architectures users bring, on random weights at a small input: channel pruning (residual adds,
depthwise groups, squeeze-excite, whole attention heads), the pruned file reloaded in a fresh engine,
int8 of every Conv/Linear (the quantize step refuses to leave one in float unless told), ONNX export.
Heavier ones, and QAT on every architecture, run with -m slow."""

from __future__ import annotations

from pathlib import Path

import pytest

from distillcli import api

pytestmark = pytest.mark.usefixtures("one_thread")
SLOW = pytest.mark.slow
MODELS = [  # (arch, args, slow)
    ("torchvision:resnet18", {}, False),
    ("torchvision:mobilenet_v3_small", {}, True),
    ("timm:mobilenetv3_small_100", {}, False),  # its classifier is timm's Linear subclass: int8 like nn.Linear
    ("timm:deit_tiny_patch16_224", {"img_size": 32}, False),
    ("torchvision:mobilenet_v2", {}, True),
    ("torchvision:efficientnet_b0", {}, True),
    ("torchvision:resnet50", {}, True),
    ("torchvision:convnext_tiny", {}, True),
    ("timm:resnet18", {}, True),
]
ARCHS = [pytest.param(arch, args, marks=SLOW) if slow else (arch, args) for arch, args, slow in MODELS]


@pytest.mark.parametrize("arch, args", ARCHS)
def test_prune_reload_quantize_and_export(arch: str, args: dict, tmp_path: Path) -> None:
    data = {"name": "synthetic", "num_classes": 4, "image_size": 32, "train_size": 32, "val_size": 32,
            "batch_size": 16}
    raw = {"name": "arch", "device": "cpu", "data": data, "student": {"arch": arch, "args": args},
           "steps": [{"prune": {"channel_ratio": 0.3, "latency": False}}], "report": {"latency": False}}
    pruned = api.run(raw, out=tmp_path / "run").record.steps[0]
    assert pruned.info.mac_reduction > 1.2, pruned.info
    if "deit" in arch:  # 3 heads per block: 0.3 of them is one
        assert tuple(pruned.info.channels["net.blocks.0.attn"]) == (3, 2), pruned.info.channels
    model = tmp_path / "run" / "models" / "student.pt"
    reloaded = api.evaluate(model, latency=False)  # rebuilt from the file: pruned shapes and all
    assert (reloaded.after.top1, reloaded.after.params) == (pruned.measures.top1, pruned.measures.params)
    quantized = api.quantize(model, {"method": "static", "compile": False, "calibration_batches": 1},
                             out=tmp_path / "q.pt2", latency=False)
    assert quantized.model.precision == "int8" and quantized.info.int8_layers > 0
    exported = api.export(model, {"format": "onnx", "name": "m.onnx", "evaluate": False}, folder=tmp_path,
                          latency=False)
    assert exported.info.max_abs_diff < 1e-3 and (tmp_path / "m.onnx").is_file()


@SLOW
@pytest.mark.parametrize("arch, args", [(arch, args) for arch, args, _ in MODELS])
def test_quantization_aware_training(arch: str, args: dict, tmp_path: Path) -> None:
    """QAT: a fake-quantized fine-tune, distilled from the float model, converted to int8 (minutes per model)."""
    data = {"name": "synthetic", "num_classes": 4, "image_size": 32, "train_size": 32, "val_size": 32,
            "batch_size": 16}
    raw = {"name": "qat", "device": "cpu", "data": data, "student": {"arch": arch, "args": args},
           "steps": [{"quantize": {"method": "qat", "epochs": 1, "compile": False}}], "report": {"latency": False}}
    step = api.run(raw, out=tmp_path / "run").record.steps[0]
    assert step.info.int8_layers > 0 and step.curve, step.info


@pytest.mark.parametrize("student, at", [
    ("torchvision:mobilenet_v3_small", {"teacher_layers": ["net.layer4"], "student_layers": ["net.features.12"]}),
    ("timm:mobilenetv3_small_100", {"teacher_layers": "stages", "student_layers": "stages"}),
])
def test_distillation_across_sources_with_a_feature_term(tmp_path: Path, student: str, at: dict) -> None:
    """A timm teacher, a torchvision or timm student, KD plus attention transfer on named layers or
    on the stages both timm models declare."""
    raw = {"name": "x", "device": "cpu",
           "data": {"name": "synthetic", "num_classes": 4, "image_size": 32, "train_size": 32, "val_size": 32,
                    "batch_size": 16},
           "teacher": {"arch": "timm:resnet18"}, "student": {"arch": student},
           "steps": [{"train": {"model": "teacher", "epochs": 1, "lr": 0.05}},
                     {"distill": {"epochs": 1, "lr": 0.05, "loss": [{"kd": {}}, {"at": at}]}}],
           "report": {"latency": False}}
    step = api.run(raw, out=tmp_path / "run").record.steps[1]
    assert step.kind == "distill" and step.measures.top1 is not None
    assert all(r.train_loss == r.train_loss for r in step.curve)  # finite: both terms reached both models
