"""Two small real runs on synthetic data, made once for the report tests."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from distillcli.engine.pipeline import Pipeline
from distillcli.progress import SilentProgress
from distillcli.recipe import load_recipe
from tests.conftest import tiny_recipe

REPORT = {"latency": True, "latency_batches": [1, 8], "latency_repeats": 2}


def make_run(folder: Path, student_width: int) -> Path:
    raw = tiny_recipe(student={"arch": "cnn", "args": {"width": student_width}}, report=REPORT,
                      steps=[{"train": {"model": "teacher", "epochs": 1, "lr": 0.05}},
                             {"distill": {"epochs": 1, "lr": 0.05}}, {"evaluate": {}}])
    folder.mkdir(parents=True)
    (folder / "recipe.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        Pipeline(load_recipe(folder / "recipe.yaml"), SilentProgress(), out=folder / "run").run()
    finally:
        torch.set_num_threads(threads)
    return folder / "run"


@pytest.fixture(scope="package")
def run_dir(tmp_path_factory) -> Path:
    """teacher (width 8) trained 1 epoch, a width-4 student distilled 1 epoch, evaluated."""
    return make_run(tmp_path_factory.mktemp("reports") / "wide", 4)


@pytest.fixture(scope="package")
def small_run_dir(tmp_path_factory) -> Path:
    """The same with a width-2 student: clearly smaller, fewer MACs."""
    return make_run(tmp_path_factory.mktemp("reports") / "small", 2)
