"""Runs that survive: killed at any point and resumed, a run ends with the metrics of an
uninterrupted one (timings aside); Ctrl-C keeps a checkpoint; NaN stops with the last good
checkpoint kept; an existing run directory is never reused silently."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from distillcli.errors import Interrupted, RunDirError, RunFailure
from distillcli.engine.pipeline import Pipeline
from distillcli.progress import SilentProgress
from distillcli.recipe import load_recipe
from distillcli.record import comparable
from distillcli.training import trainer as trainer_module
from tests.conftest import run_cli, tiny_recipe

pytestmark = pytest.mark.usefixtures("one_thread")

def normalised(metrics: dict[str, Any]) -> Any:
    """metrics.json without what legitimately differs between two runs: timings and paths."""
    return comparable(metrics)


def recipe(**changes: Any) -> dict[str, Any]:
    """Train a teacher, distil, prune gradually with a fine-tune, share: every kind of loop state."""
    return tiny_recipe(
        data={"name": "synthetic", "batch_size": 16, "train_size": 256, "val_size": 64, "num_classes": 4,
              "image_size": 16},
        steps=[{"train": {"model": "teacher", "epochs": 2, "lr": 0.05}},
               {"distill": {"epochs": 2, "lr": 0.05}},
               {"prune": {"method": "unstructured", "sparsity": 0.5, "schedule": "gradual", "frequency": 4,
                          "latency": False, "finetune": {"epochs": 2, "lr": 0.02}}},
               {"prune": {"method": "channel", "sparsity": 0.3, "schedule": "iterative", "iterations": 2,
                          "latency": False, "finetune": {"epochs": 1, "lr": 0.02}}},
               {"share": {"clusters": 8, "epochs": 1, "lr": 0.001}}],
        report={"latency": False},
        checkpoint={"every_epochs": 1, "every_minutes": 1e-9},  # also mid-epoch, at every progress sync
        **changes)


class Kill(BaseException):
    """Stands for SIGKILL: nothing catches it, so nothing after the kill point is written."""


def kill_at(monkeypatch, title: str, epoch: int, batch: int) -> None:
    """Make the training loop whose title starts with ``title`` die after ``batch`` batches of ``epoch``."""
    original = trainer_module.Trainer.fit

    class Hook:
        def __init__(self, trainer: Any) -> None:
            self.trainer = trainer

        def after_step(self, model: Any, step: int) -> None:
            t = self.trainer
            if t.title.startswith(title) and t.epoch == epoch and t.batch == batch:
                raise Kill

    def fit(self: Any, control: Any = None) -> Any:
        self.hooks.append(Hook(self))
        return original(self, control)

    monkeypatch.setattr(trainer_module.Trainer, "fit", fit)


def run(path: Path, out: Path, **kw: Any) -> Any:
    return Pipeline(load_recipe(path), SilentProgress(), out=out, **kw).run()


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[Path, dict[str, Any]]:
    import yaml

    tmp = tmp_path_factory.mktemp("reference")
    path = tmp / "r.yaml"
    path.write_text(yaml.safe_dump(recipe()))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run(path, tmp / "run")
    finally:
        torch.set_num_threads(threads)
    return path, json.loads((tmp / "run" / "metrics.json").read_text())


@pytest.mark.parametrize("title, epoch, batch", [
    ("distill", 1, 13),                 # mid-epoch, after a mid-epoch checkpoint at batch 10
    ("distill", 1, 3),                  # early in an epoch: back to the epoch-end checkpoint
    ("prune finetune (gradual)", 0, 14),  # AGP masks and schedule position
    ("prune finetune 2/2", 0, 12),      # the second round of iterative channel pruning
    ("share", 0, 15),                   # shared centroids
])
def test_killed_and_resumed_equals_uninterrupted(reference, tmp_path, monkeypatch, title, epoch, batch) -> None:
    path, expected = reference
    with monkeypatch.context() as m:
        kill_at(m, title, epoch, batch)
        with pytest.raises(Kill):
            run(path, tmp_path / "run")
    assert (tmp_path / "run" / "checkpoints" / "state.pt").is_file()
    run(path, tmp_path / "run", resume=True)
    got = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert got["run"]["status"] == "ok" and len(got["run"]["resumed"]) == 1
    assert normalised(got) == normalised(expected)


def test_killed_between_steps_resumes_at_the_next_step(reference, tmp_path, monkeypatch) -> None:
    path, expected = reference
    original = Pipeline._run_step

    def step(self: Pipeline, index: int, kind: str, cfg: Any) -> None:
        if index == 3:
            raise Kill
        original(self, index, kind, cfg)

    with monkeypatch.context() as m:
        m.setattr(Pipeline, "_run_step", step)
        with pytest.raises(Kill):
            run(path, tmp_path / "run")
    run(path, tmp_path / "run", resume=True)
    got = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert normalised(got) == normalised(expected)
    assert (tmp_path / "run" / "models" / "student.pt").is_file()


def test_two_seeded_runs_give_identical_metrics(reference, tmp_path) -> None:
    path, expected = reference
    run(path, tmp_path / "again")
    assert normalised(json.loads((tmp_path / "again" / "metrics.json").read_text())) == normalised(expected)


def test_ctrl_c_keeps_a_checkpoint_and_resume_finishes(reference, tmp_path, monkeypatch) -> None:
    path, expected = reference
    pipeline = Pipeline(load_recipe(path), SilentProgress(), out=tmp_path / "run")
    original = trainer_module.Trainer.fit

    def fit(self: Any, control: Any = None) -> Any:
        if self.title == "distill":
            pipeline.interrupt.requested = True  # what the SIGINT handler sets
        return original(self, control)

    with monkeypatch.context() as m:
        m.setattr(trainer_module.Trainer, "fit", fit)
        with pytest.raises(Interrupted, match="stopped at batch 1/16") as info:
            pipeline.run()
    assert f"distill resume {tmp_path / 'run'}" in (info.value.hint or "")
    record = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert record["run"]["status"] == "interrupted"
    run(path, tmp_path / "run", resume=True)
    assert normalised(json.loads((tmp_path / "run" / "metrics.json").read_text())) == normalised(expected)


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, write_recipe, monkeypatch) -> None:
    from distillcli.losses.classification import CETerm

    path = write_recipe(tiny_recipe(steps=[{"train": {"epochs": 3, "lr": 0.05}}], report={"latency": False}))
    original = CETerm.__call__
    calls = {"n": 0}

    def poisoned(self: Any, *args: Any) -> Any:
        loss = original(self, *args)
        calls["n"] += 1
        return loss * float("nan") if calls["n"] > 12 else loss  # epoch 2 of 8-batch epochs

    monkeypatch.setattr(CETerm, "__call__", poisoned)
    with pytest.raises(RunFailure, match=r"train\[student\]: the loss became nan in epoch 2") as info:
        run(path, tmp_path / "run")
    assert "lower the learning rate" in (info.value.hint or "")
    state = torch.load(tmp_path / "run" / "checkpoints" / "state.pt", weights_only=True)
    assert state["fits"][0]["epoch"] == 1 and state["fits"][0]["batch"] == 0  # the end of epoch 1: good
    assert all(torch.isfinite(v).all() for v in state["fits"][0]["model"].values() if v.is_floating_point())


def test_existing_run_directory_is_refused_unless_resume_or_force(tmp_path, write_recipe) -> None:
    path = write_recipe(tiny_recipe(steps=[{"evaluate": {}}], report={"latency": False}))
    run(path, tmp_path / "run")
    with pytest.raises(RunDirError, match="already holds a run of the same recipe"):
        run(path, tmp_path / "run")
    other = write_recipe(tiny_recipe(seed=3, steps=[{"evaluate": {}}], report={"latency": False}), "other.yaml")
    with pytest.raises(RunDirError, match=r"another recipe \(seed: 0 -> 3\)"):
        run(other, tmp_path / "run")
    with pytest.raises(RunDirError, match="cannot resume .* with a different recipe"):
        run(other, tmp_path / "run", resume=True)
    run(other, tmp_path / "run", force=True)
    assert "seed: 3" in (tmp_path / "run" / "recipe.yaml").read_text()


def test_a_run_saved_before_an_option_existed_resumes_after_the_upgrade(tmp_path, write_recipe, monkeypatch) -> None:
    """A distillcli upgrade between a kill and the resume adds options at their defaults: the run
    resumes from its checkpoint. An option the saved run had and this version lacks is still a difference."""
    import yaml

    from distillcli.engine.rundir import check_out_dir
    from distillcli.recipe import recipe_to_dict

    path = write_recipe(tiny_recipe(report={"latency": False}, checkpoint={"every_epochs": 1}))
    with monkeypatch.context() as m:
        kill_at(m, "distill", 2, 1)
        with pytest.raises(Kill):
            run(path, tmp_path / "run")
    saved_file, state_file = tmp_path / "run" / "recipe.yaml", tmp_path / "run" / "checkpoints" / "state.pt"
    saved, state = yaml.safe_load(saved_file.read_text()), torch.load(state_file, weights_only=True)
    for old in (saved, state["recipe"]):  # as an older version wrote them
        del old["data"]["augment_replay"], old["report"]["latency_repeats"]
    saved_file.write_text(yaml.safe_dump(saved))
    torch.save(state, state_file)
    now = recipe_to_dict(load_recipe(saved_file))
    assert now["data"]["augment_replay"] is None and "latency_repeats" in now["report"]
    record = Pipeline(load_recipe(saved_file), SilentProgress(), out=tmp_path / "run", resume=True).run().record
    assert record.run.status == "ok" and len(record.run.resumed) == 1
    assert [r.epoch for r in record.steps[1].curve] == [1, 2, 3]  # the distill step went on from its checkpoint
    saved["data"]["retired_option"] = 1
    saved_file.write_text(yaml.safe_dump(saved))
    with pytest.raises(RunDirError, match=r"data.retired_option: 1 -> None"):
        check_out_dir(tmp_path / "run", now, force=False, resume=True)


def test_failure_before_the_first_step_leaves_no_run_directory(tmp_path, write_recipe) -> None:
    from distillcli.errors import DataError

    raw = tiny_recipe(data={"name": "cifar10", "root": str(tmp_path)})  # a folder without CIFAR-10 in it
    with pytest.raises(DataError):
        run(write_recipe(raw), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_sigkill_then_distill_resume_in_fresh_processes(tmp_path, write_recipe) -> None:
    """The real thing once: a `distill run` process killed with SIGKILL mid-training, then `distill resume`."""
    raw = tiny_recipe(steps=[{"train": {"epochs": 40, "lr": 0.05}}], report={"latency": False},
                      checkpoint={"every_epochs": 1})
    path = write_recipe(raw)
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "distillcli", "run", str(path), "--out", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.stderr is not None
    for line in proc.stderr:  # kill once a few epochs are checkpointed
        if "epoch 3/40" in line:
            break
    time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    again = run_cli("run", str(path), "--out", str(out))
    assert again.returncode == 2 and f"distill resume {out}" in again.stderr
    done = run_cli("resume", str(out), "--json", env={"OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["run"]["status"] == "ok" and len(metrics["steps"][0]["curve"]) == 40
    assert [r["epoch"] for r in metrics["steps"][0]["curve"]] == list(range(1, 41))
    assert not list(out.rglob(".*.tmp"))


def test_resuming_a_finished_run_reruns_nothing(reference, tmp_path, monkeypatch) -> None:
    path, expected = reference
    run(path, tmp_path / "run")
    calls = []
    original = Pipeline._run_step
    monkeypatch.setattr(Pipeline, "_run_step", lambda self, *a: calls.append(a) or original(self, *a))
    run(path, tmp_path / "run", resume=True)
    assert calls == []
    assert normalised(json.loads((tmp_path / "run" / "metrics.json").read_text())) == normalised(expected)


def test_a_checkpoint_refuses_a_recipe_edited_behind_its_back(tmp_path, write_recipe, monkeypatch) -> None:
    path = write_recipe(tiny_recipe(report={"latency": False}))
    with monkeypatch.context() as m:
        kill_at(m, "distill", 1, 2)
        with pytest.raises(Kill):
            run(path, tmp_path / "run")
    state = torch.load(tmp_path / "run" / "checkpoints" / "state.pt", weights_only=True)
    assert state["recipe"]["name"] == "tiny" and state["recipe"]["steps"][1]["distill"]["epochs"] == 3
    saved = tmp_path / "run" / "recipe.yaml"
    saved.write_text(saved.read_text().replace("epochs: 3", "epochs: 4"))
    edited = load_recipe(saved)
    with pytest.raises(RunDirError, match="written by another recipe than its recipe.yaml"):
        Pipeline(edited, SilentProgress(), out=tmp_path / "run", resume=True).run()


def test_out_of_memory_names_the_batch_size_to_lower(tmp_path, write_recipe, monkeypatch) -> None:
    from distillcli.losses.classification import CETerm

    def oom(self: Any, *args: Any) -> Any:
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(CETerm, "__call__", oom)
    path = write_recipe(tiny_recipe(steps=[{"train": {"epochs": 1}}], report={"latency": False}))
    with pytest.raises(RunFailure, match="out of memory at batch size 32") as info:
        run(path, tmp_path / "run")
    assert "data.batch_size" in (info.value.hint or "")
