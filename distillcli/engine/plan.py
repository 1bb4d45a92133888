"""`distill run --dry-run`: load the recipe, its data and weights, and say what would happen."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from distillcli.engine.models import build_from_spec, build_teacher, recipe_data, student_from_teacher
from distillcli.engine.rundir import check_out_dir
from distillcli.measure import count_macs, count_params
from distillcli.recipe import RecipeBase, recipe_to_dict
from distillcli.runtime import Distributed, resolve_device


def plan(r: RecipeBase, run_dir: Path | None, force: bool = False, resume: bool = False) -> dict[str, Any]:
    """What the run would do, after loading its data and weights. Writes nothing."""
    if run_dir is not None:
        check_out_dir(run_dir, recipe_to_dict(r), force, resume)
    device = resolve_device(r.device, Distributed.from_env())
    data = recipe_data(r, device)
    teacher = build_teacher(r, data)
    student = (student_from_teacher(r.student, teacher, data) if r.student.from_ == "teacher" and teacher
               else build_from_spec(r.student, data))

    def summary(module: nn.Module, arch: str, source: str | None) -> dict[str, Any]:
        return {"arch": arch, "params": count_params(module), "macs": count_macs(module, data.input_shape),
                "source": source}

    models: dict[str, Any] = {}
    for role, handle, spec in (("teacher", teacher, r.teacher), ("student", student, r.student)):
        if handle is not None:
            source = (spec.checkpoint or ("a copy of the teacher" if spec.from_ else None)) if spec else None
            models[role] = {**summary(handle.module, handle.arch.name, source), "format": handle.format,
                            "precision": handle.precision}
    if teacher is not None and r.teachers:
        arch = teacher.arch.kwargs
        models["teachers"] = [{**summary(member, arch["members"][i], spec.checkpoint), "weight": arch["weights"][i]}
                              for i, (spec, member) in enumerate(zip(r.teachers, teacher.module.children()))]
    steps = []
    for index, (kind, cfg) in enumerate(r.step_list()):
        epochs = getattr(cfg, "epochs", None) or getattr(getattr(cfg, "finetune", None), "epochs", None)
        steps.append({"index": index, "kind": kind, "target": cfg.model, "epochs": epochs})
    return {"name": r.name, "device": str(device), "run_dir": str(run_dir) if run_dir else None,
            "data": {"name": data.name, "train_samples": data.train.num_samples,
                     "test_samples": data.val.num_samples, "input_shape": list(data.input_shape),
                     "val_samples": data.select.num_samples if data.select is not None else 0,
                     "val_from": r.data.val_from},
            "models": models, "steps": steps}

