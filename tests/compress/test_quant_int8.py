"""Int8 (static, dynamic) and half-precision programs agree with the float model; layers the
x86 backend cannot quantize are named, or kept in float when opted out."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from distillcli.compress.export import ProgramModule, agreement
from distillcli.compress.quantization import calibrate, convert, half_program, prepare
from distillcli.data import load_data
from distillcli.data.config import DataConfig
from distillcli.errors import CompressionError, OptionError
from distillcli.losses import make_objective
from distillcli.models.build import build_model
from distillcli.models.handle import ArchSpec
from distillcli.training.optim import OptimConfig
from distillcli.training.trainer import Trainer


@pytest.fixture(scope="module")
def data():
    cfg = DataConfig(name="synthetic", num_classes=4, image_size=16, train_size=128, val_size=64, batch_size=32)
    return load_data(cfg, device=torch.device("cpu"), seed=0)


@pytest.fixture(scope="module")
def trained(data) -> nn.Module:
    """A small CNN trained to clear margins, so top-1 agreement is meaningful."""
    torch.manual_seed(0)
    model = build_model(ArchSpec("cnn", 4, 3, data.mean, data.std, {"width": 8}))
    Trainer(model, make_objective("ce"), data, OptimConfig(epochs=3, lr=0.05)).fit()
    return model.eval()


@pytest.fixture(scope="module")
def images(data) -> torch.Tensor:
    return torch.cat([x for x, _, _ in data.val])


def _weight_dequantize_count(program: torch.export.ExportedProgram) -> int:
    return sum(n.target == torch.ops.quantized_decomposed.dequantize_per_channel.default for n in program.graph.nodes)


def test_static_int8_agrees_with_float(trained, data, images) -> None:
    prepared = prepare(copy.deepcopy(trained), "static", images[:2])
    assert calibrate(prepared, data.train, 2) == 64
    program = convert(prepared, images[:2])
    assert _weight_dequantize_count(program) == 4  # 3 convs + the classifier, int8 per channel
    result = agreement(trained, ProgramModule(program), images)
    assert result["top1_agreement"] >= 95 and result["min_cosine"] > 0.99
    # the batch dimension is dynamic: one program serves any batch size
    assert ProgramModule(program)(images[:5]).shape == (5, 4)


class Mlp(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(3 * 16 * 16, 64), nn.ReLU(), nn.Linear(64, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def test_dynamic_int8_quantizes_linear_layers(images) -> None:
    torch.manual_seed(0)
    model = Mlp().eval()
    program = convert(prepare(copy.deepcopy(model), "dynamic", images[:2]), images[:2])
    assert _weight_dequantize_count(program) == 2
    assert agreement(model, ProgramModule(program), images)["min_cosine"] > 0.99


def test_dynamic_int8_needs_linear_layers(images) -> None:
    convs = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    with pytest.raises(CompressionError, match="Linear layers, and this model has none"):
        prepare(convs, "dynamic", images[:2])


class WithDeconv(nn.Module):
    """A ConvTranspose2d: no int8 kernel on the x86 backend."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.up = nn.ConvTranspose2d(8, 8, 2, stride=2)
        self.head = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.up(torch.relu(self.conv(x))).mean((2, 3)))


def test_unquantizable_layer_is_named(images) -> None:
    with pytest.raises(CompressionError) as info:
        prepare(WithDeconv().eval(), "static", images[:2])
    assert "up (ConvTranspose2d)" in info.value.message
    assert "skip: ['up']" in info.value.hint


def test_opted_out_layer_stays_float(images) -> None:
    torch.manual_seed(0)
    model = WithDeconv().eval()
    prepared = prepare(copy.deepcopy(model), "static", images[:2], skip=["up"])
    calibrate(prepared, [(images, None, None)], 1)
    program = convert(prepared, images[:2])
    assert _weight_dequantize_count(program) == 2  # conv and head; up keeps its float weight
    deconv = next(n for n in program.graph.nodes if n.target == torch.ops.aten.conv_transpose2d.input)
    assert deconv.args[1].op == "placeholder"  # the float parameter itself, not a dequantize
    assert agreement(model, ProgramModule(program), images)["min_cosine"] > 0.99


def test_skip_pattern_that_matches_nothing_suggests_a_name(trained, images) -> None:
    with pytest.raises(OptionError, match="matches no layer") as info:
        prepare(copy.deepcopy(trained), "static", images[:2], skip=["net.stage.0.0"])
    assert "net.stages.0.0" in info.value.hint


class Branchy(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 2 if x.sum() > 0 else x  # depends on the data: not one graph


def test_untraceable_layer_is_named(images) -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), Branchy(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
    with pytest.raises(CompressionError, match=r"layer '1' \(Branchy\) cannot be captured by torch.export"):
        prepare(model.eval(), "static", images[:2])


@pytest.mark.parametrize("kind, dtype, tolerance", [("bf16", torch.bfloat16, 0.05), ("fp16", torch.float16, 1e-3)])
def test_half_precision_weights(trained, images, kind, dtype, tolerance) -> None:
    program = half_program(trained, kind, images[:2])
    weights = [t for k, t in program.state_dict.items() if "weight" in k and t.dim() == 4]
    assert weights and all(t.dtype == dtype for t in weights)
    assert next(trained.parameters()).dtype == torch.float32  # the source model is untouched
    result = agreement(trained, ProgramModule(program), images)
    assert result["max_abs_diff"] < tolerance * max(1.0, result["max_abs_logit"])


def _conv_dtypes(program: torch.export.ExportedProgram) -> set[torch.dtype]:
    return {n.meta["val"].dtype for n in program.graph.nodes if n.target == torch.ops.aten.conv2d.default}


def test_fp16_made_for_a_gpu_computes_in_float16(trained, images) -> None:
    """For the CPU, fp16 upcasts its weights and convolves in float32 (CPUs have no fast fp16
    convolutions); for a GPU the convolutions run in float16 (tensor cores). Both take and give
    float32, and agree with the float model."""
    for_cpu, for_gpu = half_program(trained, "fp16", images[:2]), half_program(trained, "fp16", images[:2], True)
    assert _conv_dtypes(for_cpu) == {torch.float32} and _conv_dtypes(for_gpu) == {torch.float16}
    out = ProgramModule(for_gpu)(images)
    assert out.dtype == torch.float32
    result = agreement(trained, ProgramModule(for_gpu), images)
    assert result["top1_agreement"] >= 98 and result["max_abs_diff"] < 0.01 * max(1.0, result["max_abs_logit"])


def test_float_programs_move_to_the_run_device_int8_stays_on_the_cpu(trained, data, images) -> None:
    """A CUDA run places a float program on the GPU and keeps an int8 one on the CPU. No GPU here: the
    'meta' device stands in for it (the same move: weights and the devices the graph names)."""
    meta = torch.device("meta")
    floating = ProgramModule(half_program(trained, "bf16", images[:2]))
    floating.place_on(meta)
    assert floating.compute_device == meta and floating(images[:3]).device == meta
    assert all(t.device.type == "cpu" for t in floating.program.state_dict.values())  # what is saved stays
    floating.place_on(torch.device("cpu"))
    assert floating(images[:3]).device.type == "cpu"
    prepared = prepare(copy.deepcopy(trained), "static", images[:2])
    calibrate(prepared, data.train, 1)
    int8 = ProgramModule(convert(prepared, images[:2]))
    int8.place_on(meta)
    assert int8.compute_device.type == "cpu" and int8(images[:3]).device.type == "cpu"


def _activation_quantize_count(program: torch.export.ExportedProgram) -> int:
    return sum(n.target == torch.ops.quantized_decomposed.quantize_per_tensor.default for n in program.graph.nodes)


def test_qat_program_fuses_like_the_static_one(images) -> None:
    """QAT's conv-bn-relu and conv-bn-add-relu patterns are found (they need the source module of
    each op, which only a strict capture records): without them every conv output is requantized
    before its ReLU / residual add, and the int8 program runs 10-15 % slower than the static one."""
    torch.manual_seed(0)
    model = build_model(ArchSpec("resnet20", 4, 3, [0.5] * 3, [0.25] * 3))
    static = prepare(copy.deepcopy(model), "static", images[:2])
    calibrate(static, [(images[:8], None, None)], 1)
    qat = prepare(copy.deepcopy(model), "qat", images[:2])
    qat.eval()
    qat(images[:8])
    counts = [_activation_quantize_count(convert(p, images[:2])) for p in (static, qat)]
    assert counts[1] <= counts[0] + 2, counts  # without the fused patterns: 19 more, one per conv


def test_zero_pad_shortcuts_stay_int8(images) -> None:
    """The option-A shortcut (slice, zero channels, gather) runs on int8 between int8 blocks: its
    input is the quantized block output and its output is quantized with the same scale, so the
    block before it writes uint8, not a 4x larger fp32 tensor that the fused conv-add then copies."""
    torch.manual_seed(0)
    model = build_model(ArchSpec("resnet20", 4, 3, [0.5] * 3, [0.25] * 3)).eval()
    prepared = prepare(copy.deepcopy(model), "static", images[:2])
    calibrate(prepared, [(images[:16], None, None)], 1)
    program = convert(prepared, images[:2])
    q, dq = torch.ops.quantized_decomposed.quantize_per_tensor.default, torch.ops.quantized_decomposed.dequantize_per_tensor.default
    gathers = [n for n in program.graph.nodes if n.target == torch.ops.aten.index_select.default]
    heads = [n for n in program.graph.nodes if n.target == torch.ops.aten.slice.Tensor and n.args[0].target != n.target]
    assert len(gathers) == len(heads) == 2  # one shortcut per downsampling stage
    for head, gather in zip(heads, gathers):
        assert head.args[0].target == dq
        assert [u.target for u in gather.users] == [q]
        assert gather.next.args[1:] == head.args[0].args[1:]  # written with the scale it was read with
    result = agreement(model, ProgramModule(program, compiled=False), images)
    assert result["min_cosine"] > 0.98


class SharedReluBlock(nn.Module):
    """torchvision's ResNet pattern: one ReLU module called twice in a residual block."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8)
        self.conv2, self.bn2 = nn.Conv2d(8, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8)
        self.relu = nn.ReLU(inplace=True)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        return self.head(self.relu(self.bn2(self.conv2(x)) + x))


def test_an_activation_module_called_twice_quantizes(data, images) -> None:
    torch.manual_seed(0)
    model = SharedReluBlock().eval()
    prepared = prepare(copy.deepcopy(model), "static", images[:2])  # refused before: one partition, two outputs
    calibrate(prepared, data.train, 2)
    program = convert(prepared, images[:2])
    assert _weight_dequantize_count(program) == 3
    assert agreement(model, ProgramModule(program), images)["min_cosine"] > 0.98
