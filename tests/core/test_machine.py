"""The machine: read (ISA caps honoured), recorded in model file headers and run records, and
the int8 configuration that follows the target (reduce_range without VNNI, ARM's quantizer)."""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import subprocess
import sys

import pytest
import torch

from distillcli.errors import ModelFileError
from distillcli.engine.file_recipe import run_on_file
from distillcli.machine import Machine, difference, file_note, this_machine
from distillcli.modelfile import file_header, load_model, save_model
from distillcli.models.build import build_model
from distillcli.models.handle import ArchSpec, ModelHandle
from distillcli.progress import SilentProgress
from distillcli.record import RunRecord
from distillcli.report.markdown import render
from distillcli.steps.evaluate import EvaluateConfig
from tests.conftest import ROOT

AVX2 = Machine(arch="x86_64", isa="avx2", features=("avx2",), cores=16, torch="2.14.1")
AMX = Machine(arch="x86_64", isa="avx512", features=("avx2", "avx512f", "avx512_vnni", "amx_tile", "amx_int8"),
              cores=2, torch="2.14.1", onednn="3.12.0")


def _model_file(path, machine: dict | None = None):
    spec = ArchSpec("cnn", 4, 3, [0.5] * 3, [0.25] * 3, {"width": 4})
    torch.manual_seed(0)
    handle = ModelHandle(build_model(spec).eval(), spec)
    header = file_header(handle, class_names=list("abcd"), input_shape=(3, 16, 16),
                         data={"name": "synthetic", "num_classes": 4, "image_size": 16, "train_size": 64,
                               "val_size": 32, "batch_size": 16})
    if machine is not None:
        header["machine"] = machine
    return save_model(path, handle, header)


def test_the_machine_reads_round_trips_and_describes_itself() -> None:
    m = this_machine()
    assert m.arch == platform.machine() and m.cores >= 1 and m.torch == str(torch.__version__)
    assert m.isa == torch.backends.cpu.get_cpu_capability().lower()
    assert Machine.from_dict(json.loads(json.dumps(m.to_dict()))) == m
    assert m.describe().startswith(m.isa_text()) and f"{m.cores} cores" in m.describe()
    assert AMX.describe() == "x86_64 AVX-512 + VNNI + AMX, 2 cores" and AMX.target == "amx"
    assert AVX2.isa_text() == "x86_64 AVX2 (no VNNI)" and AVX2.target == "avx2"
    assert difference(AMX, AMX) is None
    assert difference(AMX, AVX2) == "ISA AVX-512 -> AVX2, VNNI yes -> no, AMX yes -> no"


@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"), reason="x86 ISA caps")
def test_isa_caps_in_the_environment_are_what_the_machine_reports() -> None:
    code = ("import json; from distillcli.machine import this_machine as m; "
            "print(json.dumps([m().to_dict(), m().describe()]))")
    env = {**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2", "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    raw, text = json.loads(out.stdout)
    capped = Machine.from_dict(raw)
    assert capped.isa == "avx2" and not capped.vnni and not capped.amx and capped.target == "avx2"
    assert not set(capped.features) & {"avx512f", "avx512_vnni", "avx_vnni", "amx_int8"}
    assert text.startswith("x86_64 AVX2 (no VNNI),")


@pytest.mark.parametrize("target, quant_max", [("avx2", 127), ("avx512", 127), ("vnni", 255), ("amx", 255)])
def test_the_int8_config_follows_the_target(target, quant_max) -> None:
    from distillcli.compress.quantization import make_quantizer

    quantizer = make_quantizer("static", [], target)
    activation = quantizer.global_config.input_activation
    assert type(quantizer).__mro__[1].__name__ == "X86InductorQuantizer"
    assert activation.dtype == torch.uint8 and activation.quant_max == quant_max


def test_auto_is_this_machine_and_arm64_gets_the_arm_quantizer(monkeypatch) -> None:
    from distillcli.compress.quantization import make_quantizer
    from distillcli.compress.quantization.target import int8_plan

    monkeypatch.setattr("distillcli.machine.this_machine", lambda: AVX2)
    assert make_quantizer("static", []).global_config.input_activation.quant_max == 127
    assert int8_plan().info() == {"target": "avx2", "target_machine": "x86_64 AVX2 (no VNNI)", "reduce_range": True,
                                  "quantizer": "x86_inductor"}
    monkeypatch.setattr("distillcli.machine.this_machine", lambda: AMX)
    assert make_quantizer("dynamic", []).operator_type_qconfig  # Linear layers only
    arm = make_quantizer("static", [], "arm64")
    assert type(arm).__mro__[1].__name__ == "ArmInductorQuantizer"
    assert arm.global_config.input_activation.dtype == torch.int8


def test_the_header_records_the_machine_and_refuses_a_malformed_one(tmp_path) -> None:
    path = _model_file(tmp_path / "m.pt")
    payload = torch.load(path, weights_only=True)
    assert payload["machine"] == this_machine().to_dict()
    older = _model_file(tmp_path / "old.pt", machine={})
    payload = torch.load(older, weights_only=True)
    del payload["machine"]  # a file written before the machine was recorded still loads
    torch.save(payload, older)
    assert load_model(older).handle.arch.name == "cnn"
    bad = _model_file(tmp_path / "bad.pt", machine={**AMX.to_dict(), "cores": "many"})
    with pytest.raises(ModelFileError, match="header field 'machine' must be .*cores must be a positive integer"):
        load_model(bad)


def test_the_run_record_and_report_carry_the_machine(tmp_path) -> None:
    run = run_on_file(_model_file(tmp_path / "m.pt"), "evaluate", EvaluateConfig(), SilentProgress(), device="cpu",
                      latency=False)
    assert run.record.run.machine == this_machine()
    saved = RunRecord.model_validate(json.loads(json.dumps(run.record.to_json())))
    assert saved.run.machine == this_machine()
    assert this_machine().describe() in render(saved)


def test_the_note_names_the_machine_a_file_was_made_for() -> None:
    assert file_note({"machine": AMX.to_dict()}, "m.pt", AMX) is None
    assert file_note({}, "m.pt", AVX2) is None  # an older file: nothing to compare
    assert file_note({"machine": AMX.to_dict()}, "m.pt", AVX2) == (
        "note: m.pt was written on x86_64 AVX-512 + VNNI + AMX; this machine is x86_64 AVX2 (no VNNI): "
        "accuracy and speed may differ")
    int8 = {"machine": AVX2.to_dict(), "info": {"target": "amx"}}  # written here, tuned for another machine
    assert file_note(int8, "q.pt2", AVX2) == ("note: q.pt2 was tuned for x86_64 AVX-512 + VNNI + AMX; this machine "
                                              "is x86_64 AVX2 (no VNNI): accuracy and speed may differ")
    assert file_note(int8, "q.pt2", AMX) is None
    gpu_box = dataclasses.replace(AMX, cuda="NVIDIA H200")
    gpu_fp16 = {"machine": gpu_box.to_dict(), "info": {"computes_in": "float16"}}  # quantized in a CUDA run
    assert "computes in float16, made for a GPU, and this machine has none" in file_note(gpu_fp16, "h.pt2", AMX)
    assert file_note(gpu_fp16, "h.pt2", gpu_box) is None
    other_gpu_box = dataclasses.replace(AVX2, cuda="NVIDIA H200")  # a GPU, another CPU: the usual note
    assert file_note(gpu_fp16, "h.pt2", other_gpu_box).startswith("note: h.pt2 was written on x86_64 AVX-512")


def test_the_busy_warning_reads_what_other_work_uses_now(tmp_path, monkeypatch) -> None:
    from distillcli import runtime

    stat = tmp_path / "stat"
    stat.write_text("cpu  1000 0 0 9000 0 0 0 0 0 0\ncpu0 ...\n")
    # a moment later: 100 busy and 100 idle ticks more, so half of all the cores were busy
    monkeypatch.setattr(runtime.time, "sleep", lambda s: stat.write_text("cpu  1100 0 0 9100 0 0 0 0 0 0\n"))
    monkeypatch.setattr(runtime.os, "cpu_count", lambda: 2)
    busy = runtime.machine_load(stat=stat)
    assert busy == 1.0
    assert "the machine is busy (load 1.0 on 2 cores, this run uses 2 threads)" in runtime.busy_cores_warning(busy, 2)
    assert runtime.busy_cores_warning(0.1, 2) is None

    # no /proc/stat (macOS, Windows): the 1-minute load average
    monkeypatch.setattr(runtime.os, "getloadavg", lambda: (1.5, 1.0, 0.5))
    assert runtime.machine_load(stat=tmp_path / "missing") == 1.5
