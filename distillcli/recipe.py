"""The recipe: YAML -> typed, validated objects, with --set overrides and a JSON Schema.

Every problem is reported at once, each with its key path, the offending value and, for a
misspelt key, the closest valid one: ``steps[1].distill.temprature: unknown key; did you
mean 'temperature'?``.
"""

from __future__ import annotations

import re
import types
import typing
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import (BaseModel, ConfigDict, Discriminator, Field, PositiveInt, Tag, ValidationError,
                      create_model, field_validator)

from distillcli.data.config import DataConfig
from distillcli.errors import DistillError, RecipeError, UnknownNameError
from distillcli.registry import closest
from distillcli.steps import STEPS, StepConfig


class ModelSpec(BaseModel):
    """A teacher or student: a registry architecture, a checkpoint, or a copy of the teacher."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    arch: str | None = Field(None, description="registry name (resnet20, vgg16_bn, torchvision:resnet18 ...)")
    args: dict[str, Any] = Field(default_factory=dict, description="architecture arguments, e.g. {width: 0.5}")
    num_classes: PositiveInt | None = Field(None, description="default: the dataset's number of classes")
    from_: Literal["teacher"] | None = Field(None, alias="from", description="student only: start from a copy of the teacher")
    keep_blocks: PositiveInt | None = Field(None, description="with from: teacher, keep the teacher's first K feature blocks")
    checkpoint: str | None = Field(None, description="a distillcli model file, or a foreign state_dict file (needs arch)")
    strip_prefix: str = Field("", description="remove this prefix from checkpoint keys (e.g. 'module.')")
    key_map: dict[str, str] = Field(default_factory=dict, description="rename checkpoint key prefixes: {old: new}")
    mean: list[float] | None = Field(None, description="the normalisation this model expects (default: the dataset's)")
    std: list[float] | None = None


class ReportConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    formats: list[Literal["json", "md", "html"]] = Field(default_factory=lambda: ["json", "md", "html"])
    latency: bool = Field(True, description="measure latency after every step")
    latency_batches: list[PositiveInt] = Field(default_factory=lambda: [1, 64])
    latency_repeats: PositiveInt = 10
    save_models: bool = Field(True, description="write a model file after every step")


class CheckpointConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    every_epochs: PositiveInt | None = Field(1, le=10_000, description="checkpoint after every N epochs of "
                                             "training (null: only at step boundaries and every_minutes)")
    every_minutes: float | None = Field(None, gt=0, le=10_000, description="also checkpoint mid-epoch after this "
                                        "many minutes of training")


_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


class RecipeBase(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field("run", min_length=1, pattern=r"^[A-Za-z0-9._-]+$", description="run name (letters, digits, . _ -)")
    seed: int = 0
    device: str = Field("auto", description="auto | cpu | cuda | cuda:N | mps")
    channels_last: bool = Field(True, description="NHWC memory format (faster convolutions on CPU and GPU)")
    threads: PositiveInt | None = Field(None, description="CPU threads (default: torch's choice)")
    data: DataConfig = Field(default_factory=DataConfig)
    teacher: ModelSpec | None = None
    student: ModelSpec = Field(default_factory=lambda: ModelSpec(arch="resnet20"))
    report: ReportConfig = Field(default_factory=ReportConfig)
    checkpoint: CheckpointConfig = Field(default_factory=CheckpointConfig)

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        if not _DEVICE.match(v):
            raise ValueError("must be auto, cpu, cuda, cuda:N or mps")
        return v

    def step_list(self) -> list[tuple[str, StepConfig]]:
        """[(step kind, its validated options)] in recipe order."""
        out = []
        for item in getattr(self, "steps"):
            kind = next(iter(type(item).model_fields))
            out.append((kind, getattr(item, kind)))
        return out


def _step_kind(value: Any) -> str | None:
    if isinstance(value, dict) and len(value) == 1:
        return next(iter(value))
    if isinstance(value, BaseModel):
        return next(iter(type(value).model_fields))
    return None


@lru_cache(maxsize=1)
def recipe_model() -> type[RecipeBase]:
    """The Recipe class, with one typed entry per registered step kind."""
    members = []
    for name in STEPS.names():
        wrapper = create_model(f"{name.title()}Step", __config__=ConfigDict(extra="forbid"),
                               **{name: (STEPS.get(name).config, ...)})
        members.append(Annotated[wrapper, Tag(name)])
    item = Annotated[Union[tuple(members)], Discriminator(_step_kind, custom_error_type="step_kind",
                                                          custom_error_message="not a known step")]
    return create_model("Recipe", __base__=RecipeBase,
                        steps=(list[item], Field(default_factory=list, description="steps, run in order")))




# ---------------------------------------------------------------- error messages
def _path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _collapse(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """Drop the union tag pydantic repeats in step locations: steps.1.distill.distill.x."""
    out: list[Any] = []
    for part in loc:
        if out and part == out[-1] and isinstance(part, str):
            continue
        out.append(part)
    return tuple(out)


def _unwrap(tp: Any) -> list[Any]:
    origin = typing.get_origin(tp)
    if origin is Annotated:
        return _unwrap(typing.get_args(tp)[0])
    if origin is Union or origin is types.UnionType:
        return [m for a in typing.get_args(tp) for m in _unwrap(a)]
    return [tp]


def _keys_at(root: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """Valid keys of the mapping at ``loc`` (for did-you-mean)."""
    types: list[Any] = [root]
    for part in loc:
        nxt: list[Any] = []
        for tp in types:
            for t in _unwrap(tp):
                origin = typing.get_origin(t)
                if isinstance(t, type) and issubclass(t, BaseModel) and isinstance(part, str):
                    if part in t.model_fields:
                        nxt.append(t.model_fields[part].annotation)
                    for f in t.model_fields.values():  # step wrappers: {kind: config}
                        if f.alias == part:
                            nxt.append(f.annotation)
                elif origin is list and isinstance(part, int):
                    nxt.append(typing.get_args(t)[0])
                elif origin is dict and isinstance(part, str):
                    nxt.append(typing.get_args(t)[1])
        types = nxt
    keys: list[str] = []
    for tp in types:
        for t in _unwrap(tp):
            if isinstance(t, type) and issubclass(t, BaseModel):
                keys += [f.alias or k for k, f in t.model_fields.items()]
    return keys


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _problem(err: dict[str, Any], root: type[BaseModel]) -> str:
    loc = _collapse(tuple(err["loc"]))
    where = _path(loc)
    kind = err["type"]
    if kind == "extra_forbidden":
        key = loc[-1]
        guess = closest(str(key), _keys_at(root, loc[:-1]))
        tail = f"; did you mean {guess!r}?" if guess else f"; valid keys: {', '.join(_keys_at(root, loc[:-1]))}"
        return f"{where}: unknown key{tail}"
    if kind == "step_kind":
        value = err["input"]
        name = _step_kind(value)
        if name is None:
            return f"{where}: a step must be a mapping with one key, the step kind (got {_short(value)}); " \
                   f"e.g. `- distill: {{epochs: 1}}`"
        guess = closest(name, STEPS.names())
        tail = f"did you mean {guess!r}?" if guess else f"known steps: {', '.join(STEPS.names())}"
        return f"{where}: unknown step {name!r}; {tail}"
    if kind == "missing":
        return f"{where}: required key is missing"
    msg = err["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    return f"{where}: {msg} (got {_short(err.get('input'))})"


# ---------------------------------------------------------------- loading
def _parse_value(text: str) -> Any:
    try:
        return yaml.safe_load(text) if text != "" else ""
    except yaml.YAMLError:
        return text


def apply_override(raw: dict[str, Any], assignment: str) -> None:
    """Apply one ``a.b.c=value`` to the raw recipe. ``steps.0.epochs`` reaches into the step's options."""
    if "=" not in assignment:
        raise RecipeError([f"--set {assignment!r}: expected KEY=VALUE, e.g. steps.0.epochs=1"], source="--set")
    dotted, _, text = assignment.partition("=")
    parts = [p for p in dotted.strip().split(".") if p]
    if not parts:
        raise RecipeError([f"--set {assignment!r}: empty key"], source="--set")
    node: Any = raw
    for i, part in enumerate(parts[:-1]):
        node = _descend(node, part, parts[i + 1], dotted)
    last = parts[-1]
    if isinstance(node, list):
        if not last.isdigit() or int(last) >= len(node):
            raise RecipeError([f"--set {dotted}: index {last} is out of range (the list has {len(node)} items)"], source="--set")
        node[int(last)] = _parse_value(text)
    else:
        node[last] = _parse_value(text)


def _descend(node: Any, part: str, following: str, dotted: str) -> Any:
    if isinstance(node, list):
        if not part.isdigit() or int(part) >= len(node):
            raise RecipeError([f"--set {dotted}: index {part} is out of range (the list has {len(node)} items)"],
                              source="--set")
        child = node[int(part)]
        # a step item {kind: options}: `steps.0.epochs` means `steps.0.<kind>.epochs`
        if isinstance(child, dict) and len(child) == 1 and following not in child:
            kind = next(iter(child))
            if child[kind] is None:
                child[kind] = {}
            return child[kind]
        return child
    if not isinstance(node, dict):
        raise RecipeError([f"--set {dotted}: {part!r} is inside a value that is not a mapping"], source="--set")
    if node.get(part) is None:
        node[part] = {}
    return node[part]


def _normalise_steps(raw: dict[str, Any]) -> None:
    """`- evaluate:` with no options is YAML null; treat it as {}."""
    steps = raw.get("steps")
    if isinstance(steps, list):
        for item in steps:
            if isinstance(item, dict) and len(item) == 1:
                kind = next(iter(item))
                if item[kind] is None:
                    item[kind] = {}


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise RecipeError([f"{path}: file not found"], source="recipe",
                          hint="check the path; shipped recipes are in recipes/ (e.g. recipes/quickstart.yaml)")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise RecipeError([f"{path}: not valid YAML{where}: {getattr(e, 'problem', e)}"], source="recipe",
                          hint="fix the YAML syntax (indentation, colons, quotes)") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise RecipeError([f"{path}: the top level must be a mapping of keys (name, data, steps ...)"], source="recipe")
    return raw


def validate_raw(raw: dict[str, Any], source: str = "recipe") -> RecipeBase:
    """Typed recipe from a raw mapping; raises RecipeError listing every problem."""
    _normalise_steps(raw)
    model = recipe_model()
    try:
        recipe = model.model_validate(raw)
    except ValidationError as e:
        raise RecipeError([_problem(err, model) for err in e.errors()], source=source) from None
    problems = semantic_problems(recipe)
    if problems:
        raise RecipeError(problems, source=source)
    return recipe


def load_recipe(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> RecipeBase:
    raw = read_yaml(path)
    for assignment in overrides:
        apply_override(raw, assignment)
    return validate_raw(raw, source=str(path))


def recipe_schema() -> dict[str, Any]:
    return recipe_model().model_json_schema(by_alias=True)


def recipe_to_dict(recipe: RecipeBase) -> dict[str, Any]:
    """The resolved recipe as plain data (defaults filled in), as saved with every model."""
    return recipe.model_dump(mode="json", by_alias=True)


# ---------------------------------------------------------------- cross-field checks
def semantic_problems(recipe: RecipeBase) -> list[str]:
    """Problems that need more than one key, or a look at registries and files."""
    from distillcli.data import DATASETS
    from distillcli.models.backbones import check_arch_args

    problems: list[str] = []
    if recipe.data.name not in DATASETS:
        guess = closest(recipe.data.name, DATASETS.names())
        problems.append(f"data.name: unknown dataset {recipe.data.name!r}"
                        + (f"; did you mean {guess!r}?" if guess else f"; choose one of {', '.join(DATASETS.names())}"))
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
        if spec.checkpoint and not Path(spec.checkpoint).expanduser().is_file():
            problems.append(f"{role}.checkpoint: file not found: {spec.checkpoint}")
        if (spec.mean is None) != (spec.std is None):
            problems.append(f"{role}: give mean and std together")
    problems += _data_problems(recipe)
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
