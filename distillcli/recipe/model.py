"""The recipe as typed objects: data, teacher(s), student, report and checkpoint settings, and one
entry per registered step kind (``recipe_model``). Pure pydantic, no torch."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Annotated, Any, Literal, Union

from pydantic import (BaseModel, ConfigDict, Discriminator, Field, PositiveInt, Tag, create_model,
                      field_validator)

from distillcli.data.config import DataConfig
from distillcli.steps import STEPS, StepConfig


def step_kind(value: Any) -> str | None:
    """The kind of a ``steps`` item (its one key), None for an item that is not one."""
    if isinstance(value, dict) and len(value) == 1:
        return next(iter(value))
    if isinstance(value, BaseModel):
        return next(iter(type(value).model_fields))
    return None


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
