"""The file commands' step options come from the step's options model: each flag's help is the field's
description, its shown default the model's, and a flag the user does not give is not passed on."""

from __future__ import annotations

import re
from typing import Any

import pytest
import typer
from pydantic import BaseModel, Field
from typer.testing import CliRunner

from distillcli.cli import app
from distillcli.cli.step_flags import field_at, step_flags
from distillcli.steps.options import ExportConfig, PruneConfig, QuantizeConfig, SensitivityConfig

runner = CliRunner()
# command: (its step's options model, {flag: the field it sets})
FLAGS: dict[str, tuple[type[BaseModel], dict[str, str]]] = {
    "prune": (PruneConfig, {
        "--sparsity": "sparsity", "--channel-ratio": "channel_ratio", "--target-mac-reduction": "target_mac_reduction",
        "--method": "method", "--importance": "importance", "--scope": "scope", "--round-to": "round_to",
        "--ignore": "ignore", "--schedule": "schedule", "--iterations": "iterations",
        "--finetune-epochs": "finetune.epochs", "--lr": "finetune.lr", "--distill": "finetune.distill"}),
    "quantize": (QuantizeConfig, {
        "--method": "method", "--calibration-batches": "calibration_batches", "--skip": "skip", "--epochs": "epochs",
        "--lr": "lr", "--compile": "compile", "--target": "target"}),
    "export": (ExportConfig, {"--format": "format", "--int8": "int8", "--calibration-batches": "calibration_batches"}),
    "sensitivity": (SensitivityConfig, {"--ratios": "ratios", "--importance": "importance", "--ignore": "ignore",
                                        "--max-drop": "max_drop"}),
}
CASES = [(command, flag, path) for command, (_, flags) in FLAGS.items() for flag, path in flags.items()]


def _shown(flag: str, default: Any) -> str | None:
    """The model's default as the help shows it; None where it shows none."""
    if default is None or default is False or default == []:
        return None
    if default is True:
        return flag[2:]
    return ",".join(map(str, default)) if isinstance(default, list) else str(default)


@pytest.fixture(scope="module")
def helps() -> dict[str, list[str]]:
    """Each file command's --help, one line per option (wide enough not to wrap)."""
    return {command: runner.invoke(app, [command, "--help"], env={"COLUMNS": "2000"}).stdout.splitlines()
            for command in FLAGS}


@pytest.mark.parametrize("command, flag, path", CASES)
def test_help_is_the_field_description_and_default_the_models(helps, command: str, flag: str, path: str) -> None:
    config = FLAGS[command][0]
    field = field_at(config, path)
    line = next(x for x in helps[command] if x.strip("│ ").split(" ")[0] == flag)
    described, _, says = (field.description or "").partition("; default: ")
    default = field.get_default(call_default_factory=True)
    assert described in line if field.description else "qat: fine-tune epochs" in line  # OptimConfig.epochs: none
    shown = re.search(r"\[default: (.*?)\]\s*│$", line)
    expected = f"({says})" if says else _shown(flag, default)
    assert (shown and shown.group(1)) == expected, line


def _given(command: str, *args: str, monkeypatch) -> dict[str, Any]:
    """What the command passes on to the step's options model."""
    import distillcli.cli.files
    import distillcli.cli.sensitivity

    seen: dict[str, Any] = {}

    def step_options(config: type[BaseModel], name: str, **values: Any) -> None:
        seen.update(values)
        raise typer.Exit(0)

    for module in (distillcli.cli.files, distillcli.cli.sensitivity):
        monkeypatch.setattr(module, "step_options", step_options)
    result = runner.invoke(app, [command, "m.pt", *args])
    assert result.exit_code == 0, result.output
    return seen


@pytest.mark.parametrize("command", FLAGS)
def test_a_flag_not_given_is_not_passed_so_the_model_default_applies(command: str, monkeypatch) -> None:
    assert _given(command, monkeypatch=monkeypatch) == {}


@pytest.mark.parametrize("command, args, values", [
    ("prune", ["--sparsity", "0.5", "--no-distill", "--ignore", "stem", "--ignore", "net.fc", "--finetune-epochs", "2"],
     {"sparsity": 0.5, "ignore": ["stem", "net.fc"], "finetune": {"epochs": 2, "distill": False}}),
    ("prune", ["--lr", "0.1", "--round-to", "1", "--method", "channel"],  # a default given is passed like any value
     {"finetune": {"lr": 0.1}, "round_to": "1", "method": "channel"}),
    ("quantize", ["--no-compile", "--target", "vnni"], {"compile": False, "target": "vnni"}),
    ("export", ["--int8", "--calibration-batches", "4"], {"int8": True, "calibration_batches": 4}),
    ("sensitivity", ["--ratios", "0.25, 0.75", "--budget", "2"], {"ratios": ["0.25", "0.75"], "max_drop": 2.0}),
])
def test_given_flags_are_passed_under_the_models_keys(command, args, values, monkeypatch) -> None:
    assert _given(command, *args, monkeypatch=monkeypatch) == values


def test_a_step_option_without_a_description_cannot_become_a_flag() -> None:
    class Options(BaseModel):
        bare: int = 1
        described: int = Field(1, description="a number")

    step_flags(Options, "described")(lambda options: None)
    with pytest.raises(TypeError, match="no description"):
        step_flags(Options, "bare")(lambda options: None)
