"""`distill quantize` and `distill export` through the command tree, and `distill eval` on
their files (the int8 one in a fresh process)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from distillcli.cli import app
from distillcli.engine.file_recipe import run_on_file
from distillcli.progress import SilentProgress
from distillcli.steps.evaluate import EvaluateConfig
from tests.conftest import run_cli, save_tiny_model

runner = CliRunner()


@pytest.fixture(autouse=True)
def silent_progress(monkeypatch):
    monkeypatch.setattr("distillcli.progress.make_progress", lambda quiet: SilentProgress())


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    """A small CNN file that records tiny synthetic data (so no --data is needed)."""
    return save_tiny_model(tmp_path_factory.mktemp("model") / "m.pt")


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args])


@pytest.mark.parametrize("command", [["quantize"], ["export", "--format", "onnx"]])
@pytest.mark.parametrize("content, message", [(None, "model file not found"), (b"not a model", "refused to load")])
def test_bad_model_file_exits_2(tmp_path, command, content, message) -> None:
    path = tmp_path / "bad.pt"
    if content is not None:
        path.write_bytes(content)
    result = invoke(command[0], path, *command[1:])
    assert result.exit_code == 2 and message in result.stderr and "Traceback" not in result.output


@pytest.mark.parametrize("args, message", [
    (["--method", "int4"], "--method: Input should be"),
    (["--epochs", "2"], "training options apply to method qat only"),
    (["--skip", "net.nothing"], "skip pattern 'net.nothing' matches no layer"),
])
def test_bad_quantize_options_exit_2(model_file, tmp_path, args, message) -> None:
    result = invoke("quantize", model_file, "--device", "cpu", "--no-latency", "--out", tmp_path / "q.pt2", *args)
    assert result.exit_code == 2 and message in result.stderr and "Traceback" not in result.output


def test_eval_runs_the_file_model_on_the_run_device_and_memory_format(model_file) -> None:
    """`distill eval FILE` measures the loaded model where the data is: it was left as loaded (on the
    CPU, NCHW), which crashed on CUDA ("found at least two devices") since the data was on the GPU."""
    from distillcli import api

    run = api.evaluate(model_file, device="cpu", latency=False)
    convs = [m.weight for m in run.model.module.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(w.is_contiguous(memory_format=torch.channels_last) for w in convs)
    assert run.after.top1 is not None


def test_quantize_then_eval_in_a_fresh_process(model_file, tmp_path) -> None:
    out = tmp_path / "q.pt2"
    result = invoke("quantize", model_file, "--calibration-batches", "2", "--no-compile", "--no-latency",
                    "--device", "cpu", "--out", out, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["output"] == str(out) and out.is_file()
    assert report["info"]["method"] == "static" and report["info"]["int8_layers"] == 4
    assert report["after"]["file_bytes"] > 0 and report["before"]["latency_ms"] == {}
    proc = run_cli("eval", str(out), "--no-latency", "--json", env={"DISTILL_COMPILE": "0"})
    assert proc.returncode == 0, proc.stderr
    noise = [line for line in proc.stderr.splitlines() if not line.startswith(("step 0: evaluate", "compiling", "warning: the machine is busy"))]
    assert noise == [], proc.stderr  # only our own progress lines: no library noise
    evaluated = json.loads(proc.stdout)
    assert evaluated["precision"] == "int8" and evaluated["measures"]["top1"] == report["after"]["top1"]
    assert evaluated["measures"]["first_call_s"]  # the cost of loading the program is in the output


def test_export_onnx_then_eval(model_file, tmp_path) -> None:
    out = tmp_path / "m.onnx"
    result = invoke("export", model_file, "--format", "onnx", "--out", out)
    assert result.exit_code == 0, result.output
    assert "onnxruntime vs the model on 32 images: top-1 agreement 100.0 %" in result.stdout
    onnx = run_on_file(out, "evaluate", EvaluateConfig(), SilentProgress())  # as `distill eval m.onnx` does
    assert onnx.model.format == "onnx" and set(onnx.after.latency_ms) == {"1", "64"}
    eager = run_on_file(model_file, "evaluate", EvaluateConfig(), SilentProgress(), device="cpu", latency=False)
    assert onnx.after.top1 == eager.after.top1


def test_quantize_max_drop_says_what_it_measured(model_file, tmp_path) -> None:
    result = invoke("quantize", model_file, "--calibration-batches", "2", "--no-compile", "--no-latency",
                    "--device", "cpu", "--max-drop", "100", "--out", tmp_path / "q.pt2")
    assert result.exit_code == 0, result.output
    assert "max_drop 100: top-1 " in result.stdout and "training images that did not calibrate" in result.stdout
    assert "(1 quantization tried)" in result.stdout


def test_quantize_max_drop_on_a_held_out_share(model_file, tmp_path) -> None:
    result = invoke("quantize", model_file, "--calibration-batches", "2", "--no-compile", "--no-latency",
                    "--device", "cpu", "--max-drop", "100", "--val-split", "0.25", "--out", tmp_path / "q.pt2",
                    "--json")
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)["info"]
    assert info["control"] == "held out by data.val_split" and info["control_images"] > 0
    bad = invoke("quantize", model_file, "--val-split", "0.25", "--val-from", "elsewhere", "--out", tmp_path / "b.pt2")
    assert bad.exit_code == 2 and "val_from" in bad.stderr and "Traceback" not in bad.output
