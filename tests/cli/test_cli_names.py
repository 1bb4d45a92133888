"""Help a user can trust: one name per meaning (old names kept one release, with a warning), usage in
the Typer convention, the same engine options on every file command, and every option described,
its default shown one way."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import typer.main
import yaml
from typer.testing import CliRunner

from distillcli.cli import app
from tests.conftest import save_tiny_model

runner = CliRunner()
COMMANDS = typer.main.get_command(app).commands
FILE_COMMANDS = ["eval", "prune", "quantize", "export", "sensitivity", "import"]


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args], terminal_width=200)


def _leaves() -> list[tuple[str, Any]]:
    """Every command, sub-commands (`cache list`) included, by the words that run it; hidden ones too."""
    found = []
    for name, cmd in sorted(COMMANDS.items()):
        subs = sorted(cmd.commands.items()) if hasattr(cmd, "commands") else [("", cmd)]
        found += [(f"{name} {sub}".strip(), c) for sub, c in subs]
    return found


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    """A resnet8 file that records tiny synthetic data (so no --data is needed)."""
    return save_tiny_model(tmp_path_factory.mktemp("model") / "m.pt", arch="resnet8")


def test_sensitivity_takes_max_drop_and_its_old_name_with_one_warning(model_file, tmp_path, one_thread) -> None:
    common = ("sensitivity", model_file, "--ratios", "0.5", "--device", "cpu", "--threads", "1", "--subset", "16",
              "--json", "--force")
    new = invoke(*common, "--max-drop", "100", "--out", tmp_path / "new")
    assert new.exit_code == 0, new.output
    assert set(json.loads(new.stdout)["suggested_overrides"].values()) == {0.5}  # any drop fits 100 points
    assert "is now" not in new.stderr
    old = invoke(*common, "--budget", "-1", "--out", tmp_path / "old")
    assert old.exit_code == 0, old.output
    assert set(json.loads(old.stdout)["suggested_overrides"].values()) == {0.0}  # nothing fits a negative drop
    assert [line for line in old.stderr.splitlines() if "is now" in line] == ["warning: --budget is now --max-drop"]
    assert "--budget" not in invoke("sensitivity", "--help").stdout


@pytest.fixture
def auto_recipe(tmp_path) -> Path:
    path = tmp_path / "auto.yaml"
    path.write_text(yaml.safe_dump({"name": "a", "data": {"name": "synthetic"}, "teacher": {"checkpoint": "t.pt"},
                                    "auto": {"budget": "10m"}}))
    return path


@pytest.fixture
def auto_limits(monkeypatch):
    """What `distill auto` would search under, without searching: its config's (seconds, trials) limits."""
    import distillcli.auto.config as config

    seen = []

    def load(path, overrides):
        base, cfg = real(path, overrides)
        seen.append(cfg.limits())
        raise typer.Exit(0)

    real = config.load_auto_recipe
    monkeypatch.setattr(config, "load_auto_recipe", load)
    return seen


@pytest.mark.parametrize("flags, limits, warned", [
    ((), (600, None), False),  # the recipe's auto.budget, a key left as it is
    (("--time-budget", "90m"), (5400, None), False),
    (("--trials", "30"), (None, 30), False),
    (("--budget", "30 trials"), (None, 30), True),  # the old name, either kind
    (("--budget", "2h"), (7200, None), True),
])
def test_auto_time_budget_and_trials_set_the_search_limit(auto_recipe, auto_limits, flags, limits, warned) -> None:
    result = invoke("auto", auto_recipe, *flags)
    assert result.exit_code == 0, result.output
    assert auto_limits == [limits]
    assert ("warning: --budget is now --time-budget (or --trials N)" in result.stderr) == warned


@pytest.mark.parametrize("flags, says", [
    (("--time-budget", "30 trials"), "is not a time"),
    (("--time-budget", "90m", "--trials", "3"), "set the same limit"),
    (("--budget", "1h", "--trials", "3"), "set the same limit"),
])
def test_auto_budget_flags_that_contradict_are_refused(auto_recipe, auto_limits, flags, says) -> None:
    result = invoke("auto", auto_recipe, *flags)
    assert result.exit_code == 2 and says in result.stderr and auto_limits == []
    help_text = invoke("auto", "--help").stdout
    assert "--time-budget" in help_text and "--trials" in help_text and "--budget" not in help_text


@pytest.mark.parametrize("name", [n for n, _ in _leaves()])
def test_usage_names_arguments_in_upper_case(name: str) -> None:
    usage = next(line for line in invoke(*name.split(), "--help").stdout.splitlines() if "Usage:" in line)
    args = re.findall(r"[{\[]([^{}\[\]]+)[}\]]", usage.split("[OPTIONS]", 1)[1])
    assert all(a == a.upper() for a in args), usage  # RECIPE, not {recipe}


@pytest.mark.parametrize("name", FILE_COMMANDS)
def test_every_file_command_takes_the_engine_options(name: str) -> None:
    opts = {o for p in COMMANDS[name].params if p.param_type_name == "option" for o in p.opts}
    assert {"--device", "--threads", "--quiet", "--json"} <= opts


def test_export_takes_device_threads_and_quiet_and_says_where_it_runs(model_file, tmp_path, one_thread) -> None:
    out = tmp_path / "m.onnx"
    result = invoke("export", model_file, "--device", "cuda", "--threads", "1", "--subset", "16", "--out", out)
    assert result.exit_code == 0, result.output
    assert out.is_file() and "note: export runs on the CPU; --device cuda is not used" in result.stderr
    quiet = invoke("export", model_file, "--device", "cpu", "--quiet", "--subset", "16", "--out", out, "--force",
                   "--json")
    assert quiet.exit_code == 0 and quiet.stderr == ""
    assert json.loads(quiet.stdout)["file"] == str(out)
    device = next(p for p in COMMANDS["export"].params if p.name == "device")
    assert "export runs on the CPU" in device.help


@pytest.mark.parametrize("name, cmd", _leaves())
def test_every_option_is_described_and_its_default_shown_one_way(name: str, cmd: Any) -> None:
    for param in cmd.params:
        if getattr(param, "hidden", False):
            continue
        assert (param.help or "").strip(), f"{name} {param.opts}: no help text"
        # Typer shows a default as [default: X] (show_default="..." where None means something): not in the text too
        assert not re.search(r"\bdefault\b", param.help, re.IGNORECASE), f"{name} {param.opts}: {param.help!r}"
