"""Cross-field checks of a typed recipe: what needs more than one key, or a look at the
registries and the file system, so that `distill validate` catches what would fail later."""

from __future__ import annotations

from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING

from distillcli.data.registry import DATASETS, unused_keys
from distillcli.errors import DistillError, UnknownNameError
from distillcli.models.plans import param_count
from distillcli.models.registry import MODELS
from distillcli.models.sources import check_arch_args, split_arch
from distillcli.recipe.file_checks import checkpoint_problems
from distillcli.registry import closest
from distillcli.steps.registry import STEPS

if TYPE_CHECKING:
    from distillcli.recipe.model import ModelSpec, RecipeBase


def semantic_problems(recipe: RecipeBase) -> list[str]:
    """Problems that need more than one key, or a look at registries and files."""
    problems: list[str] = []
    if "data" in recipe.model_fields_set and "name" not in recipe.data.model_fields_set:
        problems.append("data.name: missing; name the dataset, e.g. name: imagefolder (`distill list datasets`); "
                        "only a recipe without a data section gets the digits default")
    elif recipe.data.name not in DATASETS:
        names = DATASETS.names()
        guess = closest(recipe.data.name, names)
        problems.append(f"data.name: unknown dataset {recipe.data.name!r}"
                        + (f"; did you mean {guess!r}?" if guess else f"; choose one of {', '.join(names)}"))
    specs: list[tuple[str, ModelSpec]] = [(f"teachers[{i}]", t) for i, t in enumerate(recipe.teachers or [])]
    specs += [(role, spec) for role, spec in (("teacher", recipe.teacher), ("student", recipe.student)) if spec]
    for where, spec in specs:
        problems += _model_problems(where, spec, recipe)
    problems += _teachers_problems(recipe)
    problems += _data_problems(recipe)
    if not recipe.step_list():
        problems.append("steps: the recipe has no steps; add at least one, e.g. `steps: [{evaluate: {}}]`")
    has_teacher = recipe.teacher is not None or bool(recipe.teachers)
    trained = _teacher_has_weights(recipe)
    frozen: dict[str, int] = {}  # target -> index of the step that made it a program (quantize)
    for i, (kind, cfg) in enumerate(recipe.step_list()):
        if cfg.model == "teacher" and not has_teacher:
            problems.append(f"steps[{i}].{kind}.model: 'teacher', but the recipe has no teacher section")
        if cfg.model == "teacher" and recipe.teachers and kind != "evaluate":
            problems.append(f"steps[{i}].{kind}: several teachers are used as they are, and only evaluate acts on "
                            f"them; {kind} each teacher in a run of its own and list the model files it writes")
        entry = STEPS.get(kind)
        if entry.reads_teacher and not has_teacher:
            problems.append(f"steps[{i}].{kind}: needs a teacher section")
        elif entry.reads_teacher and not trained:
            problems.append(f"steps[{i}].{kind}: the teacher is untrained (no teacher.checkpoint, and no step before "
                            f"this one trains it), so the student would learn from random outputs; add "
                            f"`- train: {{model: teacher}}` before this step, or give teacher.checkpoint")
        trained |= entry.trains and cfg.model == "teacher"
        if entry.needs_eager and cfg.model in frozen:
            problems.append(f"steps[{i}].{kind}: needs a float PyTorch model, but steps[{frozen[cfg.model]}] "
                            f"quantized the {cfg.model}; move this step before the quantize step")
        if entry.makes_program:
            frozen[cfg.model] = i
    return problems


def recipe_warnings(recipe: RecipeBase) -> list[str]:
    """Plans that run but are probably not meant: a student with more parameters than the teacher it
    learns from (roles swapped?). Counted without torch for built-in models; the run itself also
    checks models from other sources once built."""
    teacher, student = recipe.teacher, recipe.student
    if teacher is None or student is None or not any(STEPS.get(k).reads_teacher for k, _ in recipe.step_list()):
        return []
    t, s = _param_count(teacher), _param_count(student)
    if t is None or s is None or s <= t:
        return []
    return [f"student.arch: {student.arch} has {s:,} parameters, more than its teacher's {t:,} ({teacher.arch}); "
            "check that teacher and student are not swapped"]


def _param_count(spec: ModelSpec) -> int | None:
    entry = MODELS.get(spec.arch) if spec.arch in MODELS and spec.keep_blocks is None else None
    if entry is None or entry.params is None:
        return None
    return param_count(entry.params, {**spec.args, **entry.fixed}, spec.num_classes or 10)


def _teacher_has_weights(recipe: RecipeBase) -> bool:
    """Whether the teacher starts trained: from a checkpoint, from weights its arch's options fetch,
    or from the user's own code (which may load its own); several teachers each need a checkpoint."""
    spec = recipe.teacher
    if recipe.teachers or spec is None or spec.checkpoint or spec.arch is None:
        return True
    try:
        source, _ = split_arch(spec.arch)
    except DistillError:  # an unknown source: reported with the teacher's section
        return True
    return source is not None and (source.runs_user_code or any(spec.args.get(k) for k in source.weight_options))


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
        problems += checkpoint_problems(where, spec.checkpoint)
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


def _data_problems(recipe: RecipeBase) -> list[str]:
    data, problems = recipe.data, []
    if data.name not in DATASETS or "name" not in data.model_fields_set:
        return problems
    entry = DATASETS.get(data.name)
    for key in unused_keys(data, entry):
        readers = [e.name for e in DATASETS.entries() if key in e.keys]
        problems.append(f"data.{key}: dataset {data.name!r} does not use it (only {', '.join(readers)} do); remove it")
    if entry.on_disk and not data.download and not Path(data.root).expanduser().exists():
        problems.append(f"data.root: {data.root!r} does not exist; point it at the dataset's folder"
                        + (" or set data.download: true (needs internet)" if "download" in entry.keys else ""))
    if entry.layout:
        module, _, function = entry.layout.partition(":")
        problems += getattr(import_module(module), function)(data)
    return problems
