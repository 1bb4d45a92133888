"""`distill doctor` prints the machine and what each compression path uses on it; `distill eval`
says in one line when the file was made for another machine; `distill quantize --target`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from distillcli.cli import app
from distillcli.machine import Machine, this_machine
from distillcli.progress import SilentProgress
from tests.conftest import save_tiny_model

runner = CliRunner()
AVX2 = Machine(arch="x86_64", isa="avx2", features=("avx2",), cores=16, torch="2.14.1")
ARM = Machine(arch="aarch64", isa="sve256", features=("asimd", "sve", "i8mm"), cores=64, torch="2.14.1")


@pytest.fixture(autouse=True)
def silent_progress(monkeypatch):
    monkeypatch.setattr("distillcli.progress.make_progress", lambda quiet: SilentProgress())


def _other() -> Machine:
    """A machine whose ISA differs from this one's."""
    return ARM if this_machine().target == "avx2" else AVX2


def _model_file(path: Path, machine: Machine | None = None) -> Path:
    return save_tiny_model(path, {"machine": machine.to_dict()} if machine is not None else None)


def _notes(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("note:")]


def test_doctor_prints_the_isa_and_json_parses() -> None:
    here = this_machine()
    result = runner.invoke(app, ["doctor"])
    assert result.exit_code == 0, result.output
    assert here.isa_text() in result.stdout and "reduce_range" in result.stdout and "--target" in result.stdout
    assert "--target" not in runner.invoke(app, ["doctor", "--quiet"]).stdout
    result = runner.invoke(app, ["doctor", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert Machine.from_dict(report["machine"]) == here and report["summary"] == here.describe()
    assert report["int8"]["target"] == here.target
    assert report["int8"]["reduce_range"] == (here.target in ("avx2", "avx512"))
    assert report["round_to"]["cpu"] >= 1
    import onnxruntime  # the GPU providers ONNX files would use, as this onnxruntime lists them

    assert report["onnx_gpu_providers"] == [p for p in ("TensorrtExecutionProvider", "CUDAExecutionProvider")
                                            if p in onnxruntime.get_available_providers()]


def test_eval_notes_a_file_written_on_another_machine_in_one_line(tmp_path) -> None:
    other, here = _other(), this_machine()
    elsewhere = _model_file(tmp_path / "elsewhere.pt", other)
    result = runner.invoke(app, ["eval", str(elsewhere), "--device", "cpu", "--no-latency", "--json"])
    assert result.exit_code == 0, result.output
    assert _notes(result.stderr) == [f"note: elsewhere.pt was written on {other.isa_text()}; this machine is "
                                     f"{here.isa_text()}: accuracy and speed may differ"]
    assert json.loads(result.stdout)["measures"]["top1"] is not None
    result = runner.invoke(app, ["eval", str(_model_file(tmp_path / "here.pt")), "--device", "cpu", "--no-latency"])
    assert result.exit_code == 0 and _notes(result.stderr) == []


def test_quantize_for_another_target_records_it_and_eval_says_so(tmp_path) -> None:
    source, out = _model_file(tmp_path / "m.pt"), tmp_path / "q.pt2"
    target = "vnni" if this_machine().target == "avx2" else "avx2"
    result = runner.invoke(app, ["quantize", str(source), "--target", target, "--calibration-batches", "2",
                                 "--no-compile", "--no-latency", "--device", "cpu", "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)["info"]
    assert info["target"] == target and info["reduce_range"] == (target == "avx2")
    assert info["quantizer"] == "x86_inductor"
    result = runner.invoke(app, ["eval", str(out), "--device", "cpu", "--no-latency"], env={"DISTILL_COMPILE": "0"})
    assert result.exit_code == 0, result.output
    assert len(_notes(result.stderr)) == 1 and _notes(result.stderr)[0].startswith("note: q.pt2 was tuned for x86_64")
    bad = runner.invoke(app, ["quantize", str(source), "--target", "sse", "--out", str(tmp_path / "b.pt2")])
    assert bad.exit_code == 2 and "--target: Input should be" in bad.stderr
