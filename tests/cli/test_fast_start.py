"""Commands that print help, list names or check a recipe start without importing torch, and
the names they know without torch are the ones the torch registries hold."""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Runs the commands in one fresh interpreter, in order, and records each one's exit code and
# whether torch had been imported by the time it returned.
_HARNESS = """
import json, sys
from distillcli.cli import app

commands = json.loads(sys.argv[1])
results = []
for args in commands:
    try:
        app(args, prog_name="distill")
        code = 0
    except SystemExit as e:
        code = e.code or 0
    results.append({"args": args, "code": code, "torch": "torch" in sys.modules})
with open(sys.argv[2], "w") as f:
    json.dump(results, f)
"""


def _run(commands: list[list[str]], tmp_path: Path) -> list[dict]:
    out = tmp_path / "results.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", _HARNESS, json.dumps(commands), str(out)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads(out.read_text())


def _names_absent_files(recipe: Path) -> bool:
    """The recipe points at data or a checkpoint that is not there (paths relative to its file)."""
    import yaml

    raw = yaml.safe_load(recipe.read_text())
    data = raw.get("data") or {}
    paths = [(raw.get(role) or {}).get("checkpoint") for role in ("teacher", "student")]
    paths += [] if data.get("download") else [data.get("root")]
    return any(p and not (recipe.parent / p).exists() for p in paths)


def test_help_list_schema_init_and_validate_do_not_import_torch(tmp_path: Path) -> None:
    import typer.main

    from distillcli.cli import app
    from distillcli.models.names import torchvision_listed

    recipes = sorted(str(p) for p in (ROOT / "recipes").glob("*.yaml"))
    quickstart = str(ROOT / "recipes" / "quickstart.yaml")
    commands = ([["--help"], ["--version"]] + [["validate", r] for r in recipes] + [
        ["validate", quickstart, "--set", "teacher.arch=torchvision:resnet18"],  # the listed torchvision names
        ["validate", quickstart, "--set", "data.name=cifar1", "--set", "student.args.widht=2"],  # bad: exit 2
        ["list", "steps"], ["list", "losses"], ["list", "datasets"], ["list", "models", "resnet*"],
        ["schema"], ["schema", "--metrics"], ["init", str(tmp_path / "starter.yaml")],
        ["validate", str(tmp_path / "starter.yaml")],
    ])
    if not torchvision_listed():  # another torchvision release is asked directly, which imports torch
        commands = [c for c in commands if "torchvision" not in " ".join(c) and c[:2] != ["list", "models"]]
    commands += [[name, "--help"] for name in sorted(typer.main.get_command(app).commands)]
    # the control: this one builds models, so torch must show up, or the check sees nothing
    *results, control = _run(commands + [["list", "models", "cnn", "--details"]], tmp_path)
    assert control["code"] == 0 and control["torch"], control
    absent = {r for r in recipes if _names_absent_files(Path(r))}  # e.g. ../shared on a CI machine: exit 2
    for r in results:
        assert not r["torch"], f"`distill {' '.join(r['args'])}` imported torch"
        expected = {2} if "data.name=cifar1" in r["args"] else {0, 2} if set(r["args"]) & absent else {0}
        assert r["code"] in expected, r
    assert len(results) == len(commands)


def test_the_names_known_without_torch_are_the_registered_ones() -> None:
    from distillcli.data import DATASETS
    from distillcli.data.config import DATASET_NAMES
    from distillcli.losses import LOSSES
    from distillcli.losses.specs import LossTerm
    from distillcli.models.backbones import list_models
    from distillcli.models.names import MODEL_OPTIONS, TORCHVISION_OPTIONS
    from distillcli.models.registry import MODELS
    from distillcli.models.torchvision_adapter import build_torchvision

    assert list(DATASET_NAMES) == DATASETS.names()  # sorted, as the registry lists them in messages
    assert set(LossTerm.model_fields) == set(LOSSES.names())
    assert MODEL_OPTIONS.names() == list_models()
    fixed = {"name", "num_classes", "in_channels"}
    for name in list_models():  # the options in signature order, as the error messages list them
        assert MODEL_OPTIONS.get(name) == tuple(p for p in inspect.signature(MODELS.get(name)).parameters
                                                if p not in fixed), name
    assert TORCHVISION_OPTIONS == tuple(p for p in inspect.signature(build_torchvision).parameters if p not in fixed)


def test_the_listed_torchvision_names_are_the_installed_release_s() -> None:
    import torchvision

    from distillcli.models.names import torchvision_listed, torchvision_names

    if not torchvision_listed():
        pytest.skip("the names listed in models/names.py are of another torchvision release")
    assert torchvision_names() == torchvision.models.list_models(module=torchvision.models)


def test_every_step_runs_the_function_named_like_it() -> None:
    from distillcli.steps import STEPS

    modules = {p.stem for p in (ROOT / "distillcli" / "steps").glob("*.py")} - {"__init__", "base", "options",
                                                                                 "registry"}
    assert set(STEPS.names()) == modules  # a step module no entry points at would never run
    for name in STEPS.names():
        fn = STEPS.get(name).run
        assert fn.__name__ == name and fn.__module__ == f"distillcli.steps.{name}"
        assert inspect.signature(fn).parameters["cfg"].annotation == STEPS.get(name).config.__name__
