"""Cross-field checks of a typed recipe: what needs more than one key, or a look at the
registries and the file system, so that `distill validate` catches what would fail later."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from distillcli.data.config import DATASET_NAMES
from distillcli.errors import DistillError, UnknownNameError
from distillcli.models.names import check_arch_args
from distillcli.registry import closest

if TYPE_CHECKING:
    from distillcli.recipe import ModelSpec, RecipeBase


def semantic_problems(recipe: RecipeBase) -> list[str]:
    """Problems that need more than one key, or a look at registries and files."""
    problems: list[str] = []
    if recipe.data.name not in DATASET_NAMES:
        guess = closest(recipe.data.name, DATASET_NAMES)
        problems.append(f"data.name: unknown dataset {recipe.data.name!r}"
                        + (f"; did you mean {guess!r}?" if guess else f"; choose one of {', '.join(DATASET_NAMES)}"))
    for role in ("teacher", "student"):
        spec: ModelSpec | None = getattr(recipe, role)
        if spec is None:
            continue
        if spec.from_ == "teacher":
            if role == "teacher":
                problems.append("teacher.from: only the student can start from the teacher")
            elif recipe.teacher is None:
                problems.append("student.from: 'teacher' needs a teacher section")
            if spec.arch:
                problems.append(f"{role}: give either arch or from: teacher, not both")
        elif spec.keep_blocks is not None:
            problems.append(f"{role}.keep_blocks: only valid together with from: teacher")
        if spec.from_ is None and spec.arch is None and not spec.checkpoint:
            problems.append(f"{role}: name an arch (e.g. arch: resnet20) or a checkpoint")
        if spec.arch:
            try:
                check_arch_args(spec.arch, spec.args)
            except DistillError as e:
                key = "arch" if isinstance(e, UnknownNameError) else "args"
                problems.append(f"{role}.{key}: {e.message}" + (f"; {e.hint}" if e.hint else ""))
        if spec.checkpoint:
            try:
                found = Path(spec.checkpoint).expanduser().is_file()
            except (OSError, RuntimeError, ValueError) as e:  # ~nouser/..., a name too long for the file system
                problems.append(f"{role}.checkpoint: cannot be read ({e})")
            else:
                if not found:
                    problems.append(f"{role}.checkpoint: file not found: {spec.checkpoint}")
        if (spec.mean is None) != (spec.std is None):
            problems.append(f"{role}: give mean and std together")
    problems += _data_problems(recipe)
    if not recipe.step_list():
        problems.append("steps: the recipe has no steps; add at least one, e.g. `steps: [{evaluate: {}}]`")
    frozen: dict[str, int] = {}  # target -> index of the step that made it a program (quantize)
    for i, (kind, cfg) in enumerate(recipe.step_list()):
        if cfg.model == "teacher" and recipe.teacher is None:
            problems.append(f"steps[{i}].{kind}.model: 'teacher', but the recipe has no teacher section")
        if kind == "distill" and recipe.teacher is None:
            problems.append(f"steps[{i}].distill: needs a teacher section")
        if kind in _NEEDS_EAGER and cfg.model in frozen:
            problems.append(f"steps[{i}].{kind}: needs a float PyTorch model, but steps[{frozen[cfg.model]}] "
                            f"quantized the {cfg.model}; move this step before the quantize step")
        if kind == "quantize":
            frozen[cfg.model] = i
    return problems


# Steps that change or train a float model (they cannot act on a quantized program).
_NEEDS_EAGER = ("train", "distill", "prune", "share", "quantize", "sensitivity")
# Data keys that only some datasets read: a key set for another dataset would be ignored silently.
_DATASET_KEYS = {"num_classes": ("synthetic",), "channels": ("synthetic",), "train_size": ("synthetic",),
                 "val_size": ("synthetic",), "image_size": ("digits", "imagefolder", "synthetic"),
                 "download": ("cifar10", "cifar100"), "workers": ("imagefolder",)}
_ON_DISK = ("cifar10", "cifar100", "imagefolder")


def _data_problems(recipe: RecipeBase) -> list[str]:
    data, problems = recipe.data, []
    for key in sorted(data.model_fields_set & set(_DATASET_KEYS)):
        if data.name not in _DATASET_KEYS[key] and getattr(data, key) != type(data).model_fields[key].default:
            problems.append(f"data.{key}: dataset {data.name!r} does not use it (only {', '.join(_DATASET_KEYS[key])} "
                            f"do); remove it")
    if data.name in _ON_DISK and not data.download and not Path(data.root).expanduser().is_dir():
        problems.append(f"data.root: {data.root!r} does not exist; point it at the dataset's folder"
                        + (" or set data.download: true (needs internet)" if data.name != "imagefolder" else ""))
    return problems
