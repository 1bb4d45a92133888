"""How a run starts, or starts again: the record of where and how it runs, and its run directory,
laid out anew or reopened at the last checkpoint to resume from it."""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch
import yaml

from distillcli.atomic_write import remove_stale_temps, write_text
from distillcli.data.bundle import DataBundle
from distillcli.engine.run_state import RunState
from distillcli.engine.rundir import clear_run, differences
from distillcli.errors import RunDirError
from distillcli.machine import this_machine
from distillcli.modelfile import versions
from distillcli.progress import Progress
from distillcli.recipe import RecipeBase
from distillcli.record import DataInfo, RunInfo, RunRecord
from distillcli.runtime import Distributed, machine_load
from distillcli.training.checkpoint import Checkpointer


def _now() -> str:
    return _dt.datetime.now().isoformat(timespec="seconds")


def recipe_hash(recipe: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]


def new_record(recipe: RecipeBase, recipe_dict: dict[str, Any], data: DataBundle, run_dir: Path | None,
               device: torch.device, dist: Distributed, recipe_file: str | None, on_val_split: bool) -> RunRecord:
    """The record of a run that has not measured anything yet: where it runs, on which data."""
    info = RunInfo(name=recipe.name, dir=str(run_dir) if run_dir else None, device=str(device),
                   seed=recipe.seed, threads=torch.get_num_threads(), world_size=dist.world,
                   cpu_count=os.cpu_count(), load_average=machine_load(), machine=this_machine(),
                   versions=versions(), recipe_file=recipe_file, recipe_hash=recipe_hash(recipe_dict), started=_now())
    about = DataInfo(name=data.name, num_classes=data.num_classes, class_names=data.class_names,
                     input_shape=list(data.input_shape), train_samples=data.train.num_samples,
                     test_samples=0 if on_val_split else data.val.num_samples,
                     val_samples=data.select.num_samples if data.select is not None else 0,
                     val_from=recipe.data.val_from,
                     measured_on="val" if on_val_split else "test")
    return RunRecord(run=info, data=about)


def open_run_dir(path: Path, recipe: RecipeBase, recipe_dict: dict[str, Any], dist: Distributed, progress: Progress,
                 device: torch.device, *, resume: bool, force: bool) -> tuple[Checkpointer, dict[str, Any] | None]:
    """Create (or reopen) the run directory: (the run's checkpointer, the checkpoint to resume from)."""
    ckpt = recipe.checkpoint
    checkpointer = Checkpointer(path / "checkpoints" if dist.is_main else None, ckpt.every_epochs, ckpt.every_minutes)
    if resume:
        saved = Checkpointer(path / "checkpoints").read()
        if saved is None:
            progress.message(f"{path} has no checkpoint yet: starting the run from its beginning")
        return checkpointer, saved
    if dist.is_main:
        if force and path.exists():
            clear_run(path)
        (path / "models").mkdir(parents=True, exist_ok=True)
        write_text(path / "recipe.yaml", yaml.safe_dump(recipe_dict, sort_keys=False))
    dist.barrier()
    progress.message(f"run {recipe.name} -> {path}  (device {device}, seed {recipe.seed}, "
                     f"{torch.get_num_threads()} threads" + (f", {dist.world} processes)" if dist.enabled else ")"))
    return checkpointer, None


def restore(saved: dict[str, Any], run_dir: Path, recipe_dict: dict[str, Any], state: RunState, now: RunInfo,
            progress: Progress) -> tuple[RunRecord, int]:
    """Continue from a checkpoint: the record (``now``: where this leg runs), the models and random
    state at the start of the step that was running; (the record, that step): it re-runs and
    replays its finished loops."""
    if not isinstance(saved.get("recipe"), dict) or differences(saved["recipe"], recipe_dict):
        raise RunDirError(f"the checkpoint in {run_dir} was written by another recipe than its recipe.yaml "
                          "(edited since?)", "restore recipe.yaml, or start the run again with --force")
    remove_stale_temps(run_dir)
    record = RunRecord.model_validate(saved["record"])
    run = record.run
    run.resumed.append(_now())
    run.status, run.error = "running", None
    run.device, run.threads, run.world_size, run.versions = now.device, now.threads, now.world_size, now.versions
    run.machine = now.machine
    state.restore(saved, run_dir / "checkpoints")
    state.update_record(record.to_json())  # later checkpoints of this step count this resume
    step = int(saved["step"])
    done = sum(len(s.get("curve", [])) for s in saved["fits"])
    progress.message(f"resuming {run_dir} at step {step}" + (f" ({done} epochs of it done)" if done else ""))
    return record, step
