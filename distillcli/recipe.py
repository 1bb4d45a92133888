"""The recipe: YAML -> typed, validated objects, with --set overrides and a JSON Schema.

Every problem is reported at once, each with its key path, the offending value and, for a
misspelt key, the closest valid one: ``steps[1].distill.temprature: unknown key; did you
mean 'temperature'?``.
"""

from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import (BaseModel, ConfigDict, Discriminator, Field, PositiveInt, Tag, ValidationError,
                      create_model, field_validator)

from distillcli.data.config import DataConfig
from distillcli.errors import RecipeError
from distillcli.recipe_checks import semantic_problems
from distillcli.recipe_problems import later_problems, problem_text, step_kind
from distillcli.recipe_yaml import apply_override, normalise_steps, read_yaml, with_lines
from distillcli.steps import STEPS, StepConfig


class ModelSpec(BaseModel):
    """A teacher or student: a registry architecture, a checkpoint, or a copy of the teacher."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    arch: str | None = Field(None, description="registry name (resnet20, vgg16_bn, torchvision:resnet18 ...)")
    args: dict[str, Any] = Field(default_factory=dict, description="architecture arguments, e.g. {width: 0.5}")
    num_classes: PositiveInt | None = Field(None, le=100_000, description="default: the dataset's number of classes")
    from_: Literal["teacher"] | None = Field(None, alias="from", description="student only: start from a copy of the teacher")
    keep_blocks: PositiveInt | None = Field(None, le=4096, description="with from: teacher, keep the teacher's first K feature blocks")
    checkpoint: str | None = Field(None, description="a distillcli model file, or a foreign state_dict file (needs arch)")
    strip_prefix: str = Field("", description="remove this prefix from checkpoint keys (e.g. 'module.')")
    key_map: dict[str, str] = Field(default_factory=dict, description="rename checkpoint key prefixes: {old: new}")
    mean: list[float] | None = Field(None, max_length=64, description="the normalisation this model expects "
                                     "(default: the dataset's)")
    std: list[float] | None = Field(None, max_length=64)


class TeacherSpec(ModelSpec):
    """One of several teachers (``teachers:``): a model as under ``teacher:``, plus its weight."""

    weight: float = Field(1.0, gt=0, le=1e6, description="its share of the averaged logits (the weights are "
                                                          "normalised to sum to 1)")


class ReportConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    formats: list[Literal["json", "md", "html"]] = Field(default_factory=lambda: ["json", "md", "html"])
    latency: bool = Field(True, description="measure latency after every step")
    latency_batches: list[Annotated[int, Field(ge=1, le=4096)]] = Field(default_factory=lambda: [1, 64], max_length=16)
    latency_repeats: PositiveInt = Field(10, le=1000)
    save_models: bool = Field(True, description="write a model file after every step")
    tensorboard: bool = Field(False, description="write TensorBoard event files to <run_dir>/tensorboard "
                                                  "(needs `pip install tensorboard`)")


class CheckpointConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    every_epochs: PositiveInt | None = Field(1, le=10_000, description="checkpoint after every N epochs of "
                                             "training (null: only at step boundaries and every_minutes)")
    every_minutes: float | None = Field(None, gt=0, le=10_000, description="also checkpoint mid-epoch after this "
                                        "many minutes of training")


_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


class RecipeBase(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field("run", min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._-]+$", description="run name (letters, digits, . _ -)")
    seed: int = Field(0, ge=0, le=2**32 - 1, description="random seed, 0 .. 2**32-1")
    device: str = Field("auto", description="auto | cpu | cuda | cuda:N | mps")
    channels_last: bool = Field(True, description="NHWC memory format (faster convolutions on CPU and GPU)")
    threads: Annotated[int, Field(ge=1, le=1024)] | None = Field(None, description="CPU threads, 1 .. 1024 "
                                                                                    "(default: torch's choice)")
    cache_dir: str | None = Field(None, max_length=4096, description="where stored teacher outputs live "
                                  "(default: $XDG_CACHE_HOME/distill, else ~/.cache/distill)")
    trust_code: bool = Field(False, description="allow models built by your own code (arch: py:...) to import and "
                                                "run it; never saved with the run, so a resume or a file made from "
                                                "such a model asks again (--trust-code)")
    data: DataConfig = Field(default_factory=DataConfig)
    teacher: ModelSpec | None = None
    teachers: list[TeacherSpec] | None = Field(None, max_length=32, description="several teachers instead of one: "
                                               "the distilling steps learn from the weighted mean of their logits")
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


@lru_cache(maxsize=1)
def recipe_model() -> type[RecipeBase]:
    """The Recipe class, with one typed entry per registered step kind."""
    members = []
    for name in STEPS.names():
        wrapper = create_model(f"{name.title()}Step", __config__=ConfigDict(extra="forbid"),
                               **{name: (STEPS.get(name).config, ...)})
        members.append(Annotated[wrapper, Tag(name)])
    item = Annotated[Union[tuple(members)], Discriminator(step_kind, custom_error_type="step_kind",
                                                          custom_error_message="not a known step")]
    return create_model("Recipe", __base__=RecipeBase,
                        steps=(list[item], Field(default_factory=list, description="steps, run in order")))


def validate_raw(raw: dict[str, Any], source: str = "recipe") -> RecipeBase:
    """Typed recipe from a raw mapping; raises RecipeError listing every problem."""
    normalise_steps(raw)
    model = recipe_model()
    try:
        recipe = model.model_validate(raw)
    except ValidationError as e:
        problems = [problem_text(err, model) for err in e.errors()]
        raise RecipeError(problems + later_problems(raw, e, problems, model), source=source) from None
    problems = semantic_problems(recipe)
    if problems:
        raise RecipeError(problems, source=source)
    return recipe



def read_recipe(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> dict[str, Any]:
    """A recipe file plus ``--set`` overrides, as plain data. Relative paths written in the file
    are relative to the file's folder (so a recipe works from any directory); ``--set`` paths are
    relative to where distill runs."""
    raw = read_yaml(path)
    anchor_paths(raw, Path(path).parent)
    for assignment in overrides:
        apply_override(raw, assignment)
    return raw


def load_recipe(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> RecipeBase:
    """A recipe file plus ``--set`` overrides, validated (see ``read_recipe``)."""
    return validate_file(read_recipe(path, overrides), path)


def validate_file(raw: dict[str, Any], path: str | Path) -> RecipeBase:
    """``validate_raw`` of what ``read_recipe(path)`` returned: each problem names its line in the file."""
    try:
        return validate_raw(raw, source=str(path))
    except RecipeError as e:
        raise RecipeError(with_lines(e.problems, Path(path)), source=str(path), hint=e.hint) from None


_PATH_KEYS = (("data", "root"), ("teacher", "checkpoint"), ("student", "checkpoint"), (None, "cache_dir"))


def anchor_paths(raw: dict[str, Any], folder: Path) -> None:
    """Make the file's relative paths absolute against ``folder`` (``~`` paths are left to the user's home)."""
    teachers = raw.get("teachers")
    places = [(raw if section is None else raw.get(section), key) for section, key in _PATH_KEYS]
    places += [(t, "checkpoint") for t in teachers] if isinstance(teachers, list) else []
    specs = [raw.get(role) for role in ("teacher", "student")] + (teachers if isinstance(teachers, list) else [])
    for spec in specs:  # a model's own files: py:<file.py>:<fn>, and weights given as a path
        if isinstance(spec, dict) and isinstance(spec.get("arch"), str) and spec["arch"].startswith("py:"):
            location, sep, attr = spec["arch"][3:].rpartition(":")
            if location.endswith(".py") and sep:
                spec["arch"] = f"py:{_anchored(location, folder)}:{attr}"
        args = spec.get("args") if isinstance(spec, dict) else None
        places += [(args, key) for key in ("weights", "pretrained") if isinstance(args, dict)
                   and isinstance(args.get(key), str) and args[key].upper() != "DEFAULT"]
    for part, key in places:
        value = part.get(key) if isinstance(part, dict) else None
        if isinstance(value, str) and value:
            part[key] = _anchored(value, folder)


def _anchored(value: str, folder: Path) -> str:
    if value.startswith("~") or Path(value).is_absolute():
        return value
    return os.path.normpath(os.path.abspath(folder / value))


def recipe_schema() -> dict[str, Any]:
    return recipe_model().model_json_schema(by_alias=True)


def recipe_to_dict(recipe: RecipeBase) -> dict[str, Any]:
    """The resolved recipe as plain data (defaults filled in, paths absolute), as saved with every
    model and as the run's recipe.yaml: it means the same from any directory."""
    raw = recipe.model_dump(mode="json", by_alias=True, exclude={"trust_code"})  # consent is given per run
    anchor_paths(raw, Path.cwd())
    return raw


