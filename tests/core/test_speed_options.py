"""The training loop's speed options: precision (autocast, fp16 loss scaling kept across a
resume), compile (with its fallback), the teacher's share of the time, and the per-device
defaults of precision and channel rounding."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from pydantic import ValidationError

from distillcli.errors import OptionError
from distillcli.losses import make_objective
from distillcli.models.build import build_model
from distillcli.models.handle import ArchSpec, ModelHandle
from distillcli.engine.pipeline import Pipeline
from distillcli.progress import SilentProgress
from distillcli.recipe import validate_raw
from distillcli import runtime
from distillcli.machine import TARGET_CPUS, Machine
from distillcli.runtime import auto_round_to, resolve_precision, resolve_round_to
from distillcli.steps import STEPS, StepContext
from distillcli.steps.prune import PruneConfig
from distillcli.training import compiling
from distillcli.training import trainer as trainer_module
from distillcli.training.optim import OptimConfig
from distillcli.training.trainer import LoopControl, Trainer
from tests.conftest import tiny_recipe, tiny_synthetic

pytestmark = pytest.mark.usefixtures("one_thread")
CPU = torch.device("cpu")


def cnn(width: int) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(ArchSpec("cnn", 4, 3, [0.5] * 3, [0.25] * 3, {"width": width}))


def distil_recipe(**distill: object) -> dict:
    recipe = tiny_recipe(report={"latency": False})
    recipe["steps"][1]["distill"].update(distill)
    return recipe


def test_precision_defaults_and_what_each_device_refuses() -> None:
    assert resolve_precision("auto", CPU) == "fp32"
    assert resolve_precision("bf16", CPU) == "bf16"
    with pytest.raises(OptionError, match="fp16 needs CUDA"):
        resolve_precision("fp16", CPU)
    with pytest.raises(ValidationError, match="precision"):
        OptimConfig(precision="fp8")


def machine(level: str) -> Machine:
    """A machine of another ISA, as this_machine() would read it there."""
    if level == "arm64":
        return Machine(arch="aarch64", isa="default", features=("asimd",), cores=4, torch="2")
    features = {"AVX2": ("avx2",), "AVX-512": ("avx2", "avx512f", "avx512_vnni"),
                "AMX": ("avx2", "avx512f", "avx512_vnni", "amx_tile", "amx_int8")}[level]
    return Machine(arch="x86_64", isa="avx2" if level == "AVX2" else "avx512", features=features, cores=4,
                   torch="2")


@pytest.mark.parametrize("level, multiple", [("AVX-512", 16), ("AVX2", 8), ("arm64", 8)])
def test_round_to_auto_follows_the_cpu_isa(monkeypatch, level: str, multiple: int) -> None:
    monkeypatch.setattr(runtime, "this_machine", lambda: machine(level))
    assert PruneConfig(sparsity=0.5).round_to == "auto"
    assert resolve_round_to("auto", CPU) == multiple
    assert resolve_round_to("auto", torch.device("cuda")) == 8  # not read from the CPU
    assert resolve_round_to(None, CPU) is None and resolve_round_to(4, CPU) == 4
    with pytest.raises(ValidationError, match="whole number from 1 to 4096, auto or null"):
        PruneConfig(sparsity=0.5, round_to="eight")


@pytest.mark.parametrize("here, target, multiple", [
    ("AVX2", "avx512", 16), ("AVX2", "amx", 16), ("AVX2", "vnni", 16), ("AVX-512", "avx2", 8),
    ("AVX-512", "arm64", 8), ("AVX-512", "cuda", 8), ("AVX2", "auto", 8), ("AVX-512", "auto", 16)])
def test_round_to_auto_for_the_machine_that_will_run_the_model(monkeypatch, here: str, target: str,
                                                                multiple: int) -> None:
    monkeypatch.setattr(runtime, "this_machine", lambda: machine(here))
    assert resolve_round_to("auto", CPU, target) == multiple
    assert resolve_round_to(4, CPU, target) == 4 and resolve_round_to(None, CPU, target) is None


@pytest.mark.parametrize("options", [{"round_to": 8}, {"method": "unstructured"}])
def test_prune_target_applies_to_round_to_auto_only(options: dict) -> None:
    with pytest.raises(ValidationError, match="target chooses round_to: auto's channel multiple"):
        PruneConfig(sparsity=0.5, target="avx512", **options)
    with pytest.raises(ValidationError, match="target"):
        PruneConfig(sparsity=0.5, target="avx1024")


@pytest.mark.parametrize("level, target", [("AVX-512", "auto"), ("AVX2", "auto"), ("AVX2", "avx512")])
def test_channel_pruning_rounds_to_the_isa_multiple_by_default_and_records_it(monkeypatch, level: str,
                                                                              target: str) -> None:
    monkeypatch.setattr(runtime, "this_machine", lambda: machine(level))
    torch.manual_seed(0)
    spec = ArchSpec("resnet20", 4, 3, [0.5] * 3, [0.25] * 3)  # 16, 32, 64 channels
    ctx = StepContext(device=CPU, data=tiny_synthetic())
    info = STEPS.get("prune").run(ModelHandle(build_model(spec), spec), ctx,
                                  PruneConfig(channel_ratio=0.5, latency=False, target=target)).info
    multiple = 16 if "AVX-512" in (level, getattr(TARGET_CPUS.get(target), "level", None)) else 8
    assert info.round_to == multiple
    assert info.round_to_for == (TARGET_CPUS[target].text if target != "auto" else machine(level).isa_text())
    kept = {before: after for before, after in info.channels.values()}
    assert kept[64] == 32 and kept[32] == 16
    assert kept[16] == 8  # 16 channels with multiple 16: halved to 8, not left whole


@pytest.mark.parametrize("here, target, multiple, narrowest, measured", [
    ("AMX", "auto", 16, 16, True), ("AVX-512", "auto", 16, 16, True), ("AVX2", "auto", 8, 8, True),
    ("AVX2", "amx", 16, 16, True), ("AMX", "avx2", 8, 8, True), ("AMX", "avx512", 16, 8, False),
    ("AMX", "arm64", 8, 8, False), ("AMX", "vnni", 16, 16, True)])
def test_int8_programs_get_the_rounding_measured_for_int8(monkeypatch, here: str, target: str, multiple: int,
                                                          narrowest: int, measured: bool) -> None:
    """On AMX and on VNNI without it (AMD Zen 4) an int8 layer of 8 channels runs about as long as
    one of 16 (scripts/bench_conv_widths.py --precision int8), so int8 rounding never halves 16
    there; float rounding still does."""
    monkeypatch.setattr(runtime, "this_machine", lambda: machine(here))
    rounding = auto_round_to(CPU, target, int8=True)
    assert (rounding.multiple, rounding.narrowest) == (multiple, narrowest)
    assert rounding.machine.endswith(", int8") == measured and ("not measured" in rounding.machine) != measured
    assert auto_round_to(CPU, target).narrowest == 8  # float: halved down to 8 everywhere
    # an int8 program computes on the CPU, so a CUDA run prunes for this CPU's int8 kernels
    assert auto_round_to(torch.device("cuda"), int8=True) == auto_round_to(CPU, int8=True)


@pytest.mark.parametrize("later, narrowest", [("static", 16), ("dynamic", 8), ("bf16", 8), (None, 8)])
def test_prune_rounds_for_int8_when_a_later_step_quantizes_the_model_to_int8(monkeypatch, tmp_path,
                                                                             later: str | None,
                                                                             narrowest: int) -> None:
    monkeypatch.setattr(runtime, "this_machine", lambda: machine("AMX"))
    steps: list[dict] = [{"prune": {"method": "channel", "channel_ratio": 0.5, "latency": False}}]
    if later:
        steps.append({"quantize": {"method": later, "compile": False}})
    recipe = tiny_recipe(student={"arch": "resnet20"}, steps=steps, report={"latency": False, "formats": ["json"]})
    info = Pipeline(validate_raw(recipe), SilentProgress(), out=tmp_path / "run").run().record.steps[0].info
    assert (info.round_to, info.round_to_narrowest) == (16, narrowest)
    assert info.round_to_for == machine("AMX").isa_text() + (", int8" if narrowest == 16 else "")
    kept = {before: after for before, after in info.channels.values()}
    assert kept[16] == (16 if narrowest == 16 else 8)  # AMX int8: 16 channels stay whole, 8 would be no faster
    assert kept[32] == 16 and kept[64] == 32


def test_runs_in_names_the_precision_and_applies_to_round_to_auto_only() -> None:
    with pytest.raises(ValidationError, match="runs_in chooses round_to: auto's channel multiple for a precision"):
        PruneConfig(channel_ratio=0.5, runs_in="int8", round_to=8)
    with pytest.raises(ValidationError, match="runs_in"):
        PruneConfig(channel_ratio=0.5, runs_in="int4")


def test_bf16_distillation_trains_and_records_precision_and_teacher_share(tmp_path) -> None:
    # the teacher runs every epoch (no stored outputs), so every epoch has a teacher share to record
    recipe = distil_recipe(precision="bf16", teacher_cache="off")
    result = Pipeline(validate_raw(recipe), SilentProgress(), out=tmp_path / "run").run()
    train, distill = result.record.steps[0], result.record.steps[1]
    assert all(r.precision == "fp32" and r.teacher_seconds is None for r in train.curve)  # auto on the CPU
    assert [r.precision for r in distill.curve] == ["bf16"] * 3
    assert distill.curve[-1].train_loss < distill.curve[0].train_loss  # it learns
    assert distill.measures.top1 is not None and distill.measures.top1 > 25.0  # 4 classes: above chance
    assert all(0 < (r.teacher_seconds or 0) < r.seconds for r in distill.curve)
    assert not any(r.compiled for r in distill.curve)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["steps"][1]["curve"][0]["precision"] == "bf16"
    report = (tmp_path / "run" / "report.md").read_text()
    assert "bf16, teacher" in report and "% of the time" in report


def test_teacher_share_is_recorded_for_a_combined_loss(tmp_path) -> None:
    recipe = distil_recipe(loss="dkd", teacher_cache="off")
    distill = Pipeline(validate_raw(recipe), SilentProgress(), out=tmp_path / "run").run().record.steps[1]
    assert all(0 < (r.teacher_seconds or 0) < r.seconds for r in distill.curve)


def test_fp16_on_the_cpu_fails_before_any_step_runs(tmp_path) -> None:
    with pytest.raises(OptionError, match=r"steps\[1\]\.distill: precision fp16 cannot run on the cpu"):
        Pipeline(validate_raw(distil_recipe(precision="fp16")), SilentProgress(), out=tmp_path / "run").run()
    assert not (tmp_path / "run").exists()


def test_a_failing_compile_falls_back_to_eager_with_one_warning(monkeypatch) -> None:
    def broken(fn):
        def call(*args, **kwargs):
            raise torch._dynamo.exc.TorchDynamoException("no C++ compiler")
        return call

    monkeypatch.setattr(compiling.torch, "compile", broken)
    messages: list[str] = []

    class Progress(SilentProgress):
        def message(self, text: str) -> None:
            messages.append(text)

    student, teacher = cnn(4), cnn(8).eval()
    trainer = Trainer(student, make_objective("kd", teacher), tiny_synthetic(),
                      OptimConfig(epochs=2, lr=0.05, compile=True), Progress(), title="distill")
    curve = trainer.fit()
    assert len(curve) == 2 and not any(r.compiled for r in curve)
    assert len(messages) == 1 and "torch.compile failed, training on without it" in messages[0]
    assert "forward" not in vars(student) and "forward" not in vars(teacher)  # the models leave eager


@pytest.mark.slow
def test_compile_trains_and_leaves_the_models_eager(tmp_path) -> None:
    result = Pipeline(validate_raw(distil_recipe(compile=True)), SilentProgress(), out=tmp_path / "run").run()
    curve = result.record.steps[1].curve
    assert all(r.compiled for r in curve) and curve[-1].train_loss < curve[0].train_loss
    assert "forward" not in vars(result.student.module)


def test_fp16_loss_scale_survives_a_resume(monkeypatch) -> None:
    """fp16 is CUDA-only in recipes; the CPU's float16 autocast stands in to test the loop state."""
    monkeypatch.setattr(trainer_module, "resolve_precision", lambda name, device: name)
    data, cfg = tiny_synthetic(), OptimConfig(epochs=2, lr=0.05, precision="fp16")
    start = cnn(4)

    def trainer(model: torch.nn.Module) -> Trainer:
        return Trainer(model, make_objective("kd", cnn(8).eval()), data, cfg)

    saved: list[dict] = []
    whole = trainer(copy.deepcopy(start))
    # a checkpoint after epoch 1 (copied: a checkpoint is written to disk at once, the live optimiser state moves on)
    whole.fit(LoopControl(save=lambda s: saved.append(copy.deepcopy(s)), due_at_epoch_end=lambda epochs: True))
    state = saved[0]
    assert state["epoch"] == 1 and state["scaler"]["scale"] > 0
    resumed = trainer(cnn(4))
    resumed.load_state_dict({**state, "scaler": {**state["scaler"], "scale": 8.0}})
    assert resumed.precision.scaler is not None and resumed.precision.scaler.get_scale() == 8.0
    resumed.load_state_dict(state)
    resumed.fit()
    assert [r.precision for r in resumed.curve] == ["fp16", "fp16"]
    for a, b in zip(whole.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.equal(a, b)
