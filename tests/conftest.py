"""Shared fixtures: tiny recipes on synthetic data, run through the real CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


def tiny_recipe(**changes) -> dict:
    """A recipe that runs in a few seconds: synthetic 4-class data, two small CNNs."""
    recipe = {
        "name": "tiny",
        "seed": 0,
        "device": "cpu",
        "data": {"name": "synthetic", "batch_size": 32, "train_size": 256, "val_size": 64,
                 "num_classes": 4, "image_size": 16},
        "teacher": {"arch": "cnn", "args": {"width": 8}},
        "student": {"arch": "cnn", "args": {"width": 4}},
        "steps": [{"train": {"model": "teacher", "epochs": 2, "lr": 0.05}},
                  {"distill": {"epochs": 3, "lr": 0.05}},
                  {"evaluate": {}}],
        "report": {"latency_repeats": 2, "latency_batches": [1, 8]},
    }
    recipe.update(changes)
    return recipe


def save_tiny_model(path: Path, header: dict | None = None, arch: str = "cnn", args: dict | None = None) -> Path:
    """A small model file (a width-8 CNN unless ``arch`` / ``args`` say otherwise) that records tiny
    synthetic data, so no --data is needed; ``header``: fields that replace the written header's."""
    import torch

    from distillcli.modelfile import file_header, save_model
    from distillcli.models.build import build_model
    from distillcli.models.handle import ArchSpec, ModelHandle

    data = tiny_synthetic(train_size=64, val_size=32, batch_size=16)
    torch.manual_seed(0)
    spec = ArchSpec(arch, 4, 3, data.mean, data.std, {"width": 8} if args is None and arch == "cnn" else args or {})
    handle = ModelHandle(build_model(spec).eval(), spec)
    written = file_header(handle, class_names=data.class_names, input_shape=data.input_shape, data=data.spec)
    return save_model(path, handle, {**written, **(header or {})})


def tiny_synthetic(**changes):
    """4 classes of 16x16 synthetic images, 128 for training and 64 for validation, on the CPU."""
    from distillcli.data import load_data
    from distillcli.data.config import DataConfig

    cfg = DataConfig(**{"name": "synthetic", "num_classes": 4, "image_size": 16, "train_size": 128, "val_size": 64,
                        "batch_size": 32, **changes})
    return load_data(cfg, device="cpu", seed=0)


@pytest.fixture(scope="session", autouse=True)
def private_cache(tmp_path_factory):
    """Stored teacher outputs go to a folder of the test session, never the user's ~/.cache
    (subprocesses inherit the variable)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg-cache")))
        yield


@pytest.fixture
def write_recipe(tmp_path):
    def write(recipe: dict, name: str = "recipe.yaml") -> Path:
        path = tmp_path / name
        path.write_text(yaml.safe_dump(recipe, sort_keys=False))
        return path

    return write


@pytest.fixture
def one_thread():
    """Tiny tensors run faster on one thread, and are then immune to other processes' load."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def run_cli(*args: str, cwd: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    """`distill ARGS` in a fresh process, as a user runs it."""
    full_env = {**os.environ, **(env or {})}
    full_env.pop("DISTILL_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "distillcli", *args], capture_output=True, text=True,
                          cwd=cwd, env=full_env, timeout=600)


def run_json(*args: str, **kw) -> dict:
    proc = run_cli(*args, "--json", **kw)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


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


def run_in_one_process(commands: list[list[str]], tmp_path: Path) -> list[dict]:
    """Each `distill` command line run in turn in one fresh interpreter: exit code, and whether torch was imported."""
    out = tmp_path / "results.json"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", _HARNESS, json.dumps(commands), str(out)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads(out.read_text())
