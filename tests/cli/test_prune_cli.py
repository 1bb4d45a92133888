"""`distill prune` and `distill sensitivity` through the command tree (typer's CliRunner)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
import yaml
from typer.testing import CliRunner

from distillcli.modelfile import load_model
from distillcli.cli import app
from tests.conftest import save_tiny_model

runner = CliRunner()


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: one thread is faster and immune to load


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    """A resnet8 file that records tiny synthetic data (so no --data is needed)."""
    return save_tiny_model(tmp_path_factory.mktemp("model") / "m.pt", arch="resnet8")


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def test_prune_alone_says_how_to_round_for_int8_where_that_differs(model_file, tmp_path, monkeypatch) -> None:
    """A standalone prune cannot see the `distill quantize` that may follow: on AMX, where int8
    wants other widths than float, it says --runs-in int8; asked for int8, it says nothing."""
    from distillcli import runtime
    from distillcli.machine import Machine

    amx = Machine(arch="x86_64", isa="avx512", features=("avx2", "avx512f", "avx512_vnni", "amx_tile", "amx_int8"),
                  cores=2, torch="2")
    monkeypatch.setattr(runtime, "this_machine", lambda: amx)
    common = ("prune", model_file, "--target-mac-reduction", "1.5", "--device", "cpu", "--force")
    result = invoke(*common, "--out", tmp_path / "float.pt")
    assert result.exit_code == 0, result.output
    assert "prune with --runs-in int8" in result.output and "multiples of 16)" in result.output
    result = invoke(*common, "--runs-in", "int8", "--out", tmp_path / "int8.pt")
    assert result.exit_code == 0, result.output
    assert "--runs-in int8" not in result.output
    info = json.loads(invoke(*common, "--runs-in", "int8", "--json", "--out", tmp_path / "j.pt").stdout)["info"]
    assert info["round_to_for"].endswith(", int8") and info["round_to_narrowest"] == 16


def test_prune_writes_a_smaller_model_and_reports_before_after(model_file, tmp_path) -> None:
    out = tmp_path / "pruned.pt"
    result = invoke("prune", model_file, "--sparsity", "0.5", "--round-to", "4", "--device", "cpu",
                    "--finetune-epochs", "1", "--out", out, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["output"] == str(out) and out.is_file()
    # --sparsity is the share of the weights removed, as PyTorch users read it (not of the channels);
    # rounded channel counts give the plan nearest it, on either side
    assert 0.45 <= 1 - report["after"]["params"] / report["before"]["params"] < 0.6
    assert report["after"]["macs"] < report["before"]["macs"] / 1.8
    assert report["after"]["file_bytes"] < report["before"]["file_bytes"]
    info = report["info"]
    assert info["method"] == "channel" and info["mac_reduction"] > 1.8 and "speedup_b64" in info
    assert info["channels_removed"] < 0.45 and abs(info["sparsity"] - 0.5) < 0.1
    # before and after were timed in alternation in one process, each with its spread
    assert set(report["before"]["latency_iqr_ms"]) == set(report["after"]["latency_iqr_ms"]) == {"1", "64"}
    assert len(report["curve"]) == 1
    pruned = load_model(out).handle.module
    assert all(m.out_channels % 4 == 0 for m in pruned.modules() if isinstance(m, torch.nn.Conv2d) and m.out_channels > 3)


def test_prune_table_and_unstructured_note(model_file, tmp_path) -> None:
    result = invoke("prune", model_file, "--method", "unstructured", "--sparsity", "0.8", "--device", "cpu",
                    "--out", tmp_path / "sparse.pt")
    assert result.exit_code == 0, result.output
    assert "before" in result.stdout and "after" in result.stdout
    assert "sparsity 80.0 %" in result.stdout and "not faster" in result.stdout


@pytest.mark.parametrize("args, message", [
    (["--sparsity", "1.0"], "--sparsity"),
    (["--sparsity", "0"], "--sparsity"),
    (["--sparsity", "-0.5"], "--sparsity"),
    (["--target-mac-reduction", "0.5"], "--target-mac-reduction"),
    ([], "exactly one of sparsity"),
    (["--sparsity", "0.5", "--method", "channels"], "--method"),
])
def test_impossible_options_exit_2_with_a_message(model_file, args: list[str], message: str) -> None:
    result = invoke("prune", model_file, *args)
    assert result.exit_code == 2
    assert message in result.stderr and "Traceback" not in result.output


def test_unreachable_target_exits_2(model_file, tmp_path) -> None:
    result = invoke("prune", model_file, "--target-mac-reduction", "500", "--device", "cpu", "--out", tmp_path / "x.pt")
    assert result.exit_code == 2 and "cannot reach" in result.stderr


@pytest.mark.parametrize("content", [b"not a model at all", None])
def test_bad_model_file_exits_2(tmp_path, content: bytes | None) -> None:
    path = tmp_path / "bad.pt"
    if content is not None:
        path.write_bytes(content)
    result = invoke("prune", path, "--sparsity", "0.5")
    assert result.exit_code == 2 and "error:" in result.stderr and "Traceback" not in result.output


def test_sensitivity_writes_csv_plot_and_suggests_overrides(model_file, tmp_path) -> None:
    out = tmp_path / "sens"
    result = invoke("sensitivity", model_file, "--ratios", "0.25,0.75", "--device", "cpu", "--max-drop", "100",
                    "--out", out)
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader((out / "sensitivity.csv").open()))
    layers = {r["layer"] for r in rows}
    assert len(rows) == 2 * len(layers) and "net.conv1" in layers
    assert (out / "sensitivity.png").read_bytes()[:4] == b"\x89PNG"
    snippet = result.stdout[result.stdout.index("overrides:"):]
    overrides = yaml.safe_load(snippet)["overrides"]
    assert set(overrides) == layers and all(v == 0.75 for v in overrides.values())  # any drop fits 100 points
    again = invoke("sensitivity", model_file, "--ratios", "0.5", "--device", "cpu", "--out", out)
    assert again.exit_code == 2 and "add --force" in again.stderr  # nothing is overwritten silently
    as_json = invoke("sensitivity", model_file, "--ratios", "0.5", "--device", "cpu", "--max-drop", "-1",
                     "--out", out, "--json", "--force")
    report = json.loads(as_json.stdout)
    assert set(report["suggested_overrides"].values()) == {0.0}  # nothing fits a negative budget
    assert invoke("sensitivity", model_file, "--ratios", "0.5,1.5").exit_code == 2
