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
    specs: list[tuple[str, ModelSpec]] = [(f"teachers[{i}]", t) for i, t in enumerate(recipe.teachers or [])]
    specs += [(role, spec) for role, spec in (("teacher", recipe.teacher), ("student", recipe.student)) if spec]
    for where, spec in specs:
        problems += _model_problems(where, spec, recipe)
    problems += _teachers_problems(recipe)
    problems += _data_problems(recipe)
    if not recipe.step_list():
        problems.append("steps: the recipe has no steps; add at least one, e.g. `steps: [{evaluate: {}}]`")
    has_teacher = recipe.teacher is not None or bool(recipe.teachers)
    frozen: dict[str, int] = {}  # target -> index of the step that made it a program (quantize)
    for i, (kind, cfg) in enumerate(recipe.step_list()):
        if cfg.model == "teacher" and not has_teacher:
            problems.append(f"steps[{i}].{kind}.model: 'teacher', but the recipe has no teacher section")
        if cfg.model == "teacher" and recipe.teachers and kind != "evaluate":
            problems.append(f"steps[{i}].{kind}: several teachers are used as they are, and only evaluate acts on "
                            f"them; {kind} each teacher in a run of its own and list the model files it writes")
        if kind == "distill" and not has_teacher:
            problems.append(f"steps[{i}].distill: needs a teacher section")
        if kind in _NEEDS_EAGER and cfg.model in frozen:
            problems.append(f"steps[{i}].{kind}: needs a float PyTorch model, but steps[{frozen[cfg.model]}] "
                            f"quantized the {cfg.model}; move this step before the quantize step")
        if kind == "quantize":
            frozen[cfg.model] = i
    return problems


def _model_problems(where: str, spec: ModelSpec, recipe: RecipeBase) -> list[str]:
    """A teacher's, a student's or one of several teachers' section, ``where`` naming it."""
    problems = []
    if spec.from_ == "teacher":
        if where != "student":
            problems.append(f"{where}.from: only the student can start from the teacher")
        elif recipe.teachers:
            problems.append("student.from: 'teacher' needs a single teacher, and the recipe lists several; start "
                            "the student from a file (checkpoint:) or an arch")
        elif recipe.teacher is None:
            problems.append("student.from: 'teacher' needs a teacher section")
        if spec.arch:
            problems.append(f"{where}: give either arch or from: teacher, not both")
    elif spec.keep_blocks is not None:
        problems.append(f"{where}.keep_blocks: only valid together with from: teacher")
    if spec.from_ is None and spec.arch is None and not spec.checkpoint:
        problems.append(f"{where}: name an arch (e.g. arch: resnet20) or a checkpoint")
    if spec.arch:
        try:
            check_arch_args(spec.arch, spec.args)
        except DistillError as e:
            key = "arch" if isinstance(e, UnknownNameError) else "args"
            problems.append(f"{where}.{key}: {e.message}" + (f"; {e.hint}" if e.hint else ""))
    if spec.checkpoint:
        try:
            found = Path(spec.checkpoint).expanduser().is_file()
        except (OSError, RuntimeError, ValueError) as e:  # ~nouser/..., a name too long for the file system
            problems.append(f"{where}.checkpoint: cannot be read ({e})")
        else:
            if not found:
                problems.append(f"{where}.checkpoint: file not found: {spec.checkpoint}")
    if (spec.mean is None) != (spec.std is None):
        problems.append(f"{where}: give mean and std together")
    return problems


def _teachers_problems(recipe: RecipeBase) -> list[str]:
    """``teachers:`` replaces ``teacher:``; its members are used as loaded, so each needs weights."""
    if recipe.teachers is None:
        return []
    problems = []
    if recipe.teacher is not None:
        problems.append("teacher, teachers: give one teacher (teacher:) or several (teachers:), not both")
    if len(recipe.teachers) < 2:
        problems.append("teachers: list at least two models; a single one goes under teacher:")
    for i, spec in enumerate(recipe.teachers):
        if spec.arch and not spec.checkpoint:
            problems.append(f"teachers[{i}]: needs a checkpoint (several teachers are used as they are, not "
                            "trained); train it in a run with teacher: and list that run's models/teacher.pt")
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
