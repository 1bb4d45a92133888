"""The same `distill run` under torchrun: two gloo processes on the CPU give the metrics of
one process with the same global batch (to tolerance: BatchNorm statistics are per process),
only rank 0 writes, and a checkpoint resumes with another number of processes."""

from __future__ import annotations

import json
from typing import Any

import pytest

from distillcli.engine.pipeline import Pipeline
from distillcli.progress import SilentProgress
from distillcli.recipe import load_recipe
from tests.conftest import run_cli, tiny_recipe
from tests.core.test_resume import Kill, kill_at

ENV = {"OMP_NUM_THREADS": "1"}


def curve(metrics: dict[str, Any], step: int) -> list[tuple[float, float]]:
    return [(r["train_loss"], r["test_loss"]) for r in metrics["steps"][step]["curve"]]


def test_two_processes_match_one_and_only_rank_0_writes(tmp_path, write_recipe) -> None:
    path = write_recipe(tiny_recipe(report={"latency": False}))
    one = run_cli("run", str(path), "--out", str(tmp_path / "one"), "--quiet", env=ENV)
    two = run_cli("run", str(path), "--out", str(tmp_path / "two"), "--nproc", "2", env=ENV)
    assert one.returncode == 0 and two.returncode == 0, two.stderr
    a = json.loads((tmp_path / "one" / "metrics.json").read_text())
    b = json.loads((tmp_path / "two" / "metrics.json").read_text())
    assert b["run"]["world_size"] == 2 and a["run"]["world_size"] == 1
    for step in range(3):
        assert b["steps"][step]["measures"]["samples"] == a["steps"][step]["measures"]["samples"] == 64
        for (la, va), (lb, vb) in zip(curve(a, step), curve(b, step)):
            assert lb == pytest.approx(la, abs=0.05) and vb == pytest.approx(va, abs=0.05)
    log = (tmp_path / "two" / "run.log").read_text()
    assert log.count("step 1: distill [student] top-1") == 1  # one writer
    assert two.stderr.count("distill epoch 3/3") == 1  # one progress display
    assert sorted(p.name for p in (tmp_path / "two" / "models").iterdir()) == sorted(
        p.name for p in (tmp_path / "one" / "models").iterdir())


def test_a_checkpoint_resumes_with_another_number_of_processes(tmp_path, write_recipe, monkeypatch) -> None:
    path = write_recipe(tiny_recipe(report={"latency": False}))
    with monkeypatch.context() as m:
        kill_at(m, "distill", 1, 2)
        with pytest.raises(Kill):
            Pipeline(load_recipe(path), SilentProgress(), out=tmp_path / "run").run()
    done = run_cli("run", str(path), "--resume", str(tmp_path / "run"), "--nproc", "2", env=ENV)
    assert done.returncode == 0, done.stderr
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["run"]["status"] == "ok" and metrics["run"]["world_size"] == 2
    assert [r["epoch"] for r in metrics["steps"][1]["curve"]] == [1, 2, 3]
