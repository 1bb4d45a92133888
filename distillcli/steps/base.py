"""The interface every step shares.

A step is a function ``run(model, ctx, cfg) -> StepOutput``: it receives the current model
and the run context, and returns the next model plus what it measured along the way. It
never knows which step ran before it, and steps never import each other. Its options are a
pydantic model (``cfg``, declared in ``steps.options``), so steps are as callable from code as
from YAML. A step that trains asks ``ctx.fit`` to do it: the engine behind it owns the loop,
checkpoints and resume.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch import nn

from distillcli.data.bundle import DataBundle
from distillcli.errors import OptionError
from distillcli.facts import StepFacts
from distillcli.losses import KDOptions, make_objective
from distillcli.losses.options import SelfDistillOptions
from distillcli.losses.terms import Objective
from distillcli.models.build import place
from distillcli.models.handle import ModelHandle
from distillcli.progress import Progress, SilentProgress
from distillcli.record import EpochRecord, TeacherCacheRecord
from distillcli.runtime import Distributed
from distillcli.teacher_cache.logits import TeacherLogits, open_store
from distillcli.training.fit import FitSession
from distillcli.training.optim import OptimConfig


@dataclass
class StepContext:
    device: torch.device
    data: DataBundle
    seed: int = 0
    teacher: ModelHandle | None = None  # the current teacher, if the recipe has one
    progress: Progress = field(default_factory=SilentProgress)
    channels_last: bool = False
    workdir: Path | None = None  # where a step writes its extra files (sensitivity/)
    exports_dir: Path | None = None  # where export steps write (the run's exports/)
    dist: Distributed = field(default_factory=Distributed)
    fits: FitSession | None = None  # the engine's training seam; None: plain loops, no checkpoints
    cache_dir: Path | None = None  # the teacher-output store's folder; None: outputs are never stored
    teacher_cache: TeacherCacheRecord | None = None  # what this step's teacher outputs came from (teacher_logits)
    int8_later: bool = False  # a later step of the recipe makes this step's model's convolutions int8

    def fit(self, model: nn.Module, objective: Objective, cfg: OptimConfig, hooks: Sequence[Any] = (),
            title: str = "train") -> list[EpochRecord]:
        """Train ``model`` with ``objective``; returns the per-epoch curve."""
        if self.fits is None:
            self.fits = FitSession(self.data, self.progress, self.dist)
        return self.fits(model, objective, cfg, hooks, title)

    def teacher_logits(self, teacher: nn.Module, cfg: KDOptions, features: bool = False) -> TeacherLogits:
        """Where a distilling step's teacher logits come from: the store (``cfg.teacher_cache``) or the
        teacher. ``features``: the objective reads the teacher's layers, which a store cannot give."""
        if self.teacher_cache is None:
            self.teacher_cache = TeacherCacheRecord(mode=cfg.teacher_cache)
        store = open_store(teacher, cfg.teacher_cache, self.data.train, self.data.num_classes,
                           self.cache_dir, self.dist.world, self.progress.message, features)
        if store is not None:
            self.teacher_cache.key = store.folder.name
        return TeacherLogits(teacher, store, self.data.train, self.data.num_classes, self.teacher_cache)

    def self_distillation(self, reference: nn.Module | None, cfg: SelfDistillOptions) -> Objective:
        """The fine-tune objective of prune, share and QAT: KD from ``reference`` (the model as it was
        before the step, see ``reference_copy``), or the labels alone when there is none."""
        if reference is None:
            return make_objective("ce", label_smoothing=cfg.label_smoothing)  # type: ignore[attr-defined]
        logits = self.teacher_logits(reference, cfg)
        return make_objective("kd", reference, cfg, cfg.label_smoothing, logits=logits)  # type: ignore[attr-defined]


def reference_copy(module: nn.Module, cfg: SelfDistillOptions) -> nn.Module | None:
    """A frozen copy of ``module`` for the step's fine-tune to distil from (``cfg.distill``), else None."""
    return copy.deepcopy(module).eval() if cfg.distill else None


@dataclass
class StepOutput:
    model: ModelHandle
    curve: list[EpochRecord] = field(default_factory=list)  # per-epoch training curve
    info: StepFacts | None = None  # what the step did (distillcli.facts)


StepFn = Callable[[ModelHandle, StepContext, Any], StepOutput]


def require_eager(model: ModelHandle, step_name: str) -> None:
    """Steps that change or train a model need the float PyTorch model, not a program or ONNX file."""
    if model.format != "eager":
        what = f"{model.precision} {model.format}"
        raise OptionError(f"{step_name} needs a float PyTorch model (.pt), and this one is {what!r}",
                          f"put the {step_name} step before quantize / export, or use the .pt file the "
                          f"{what} model was made from")


def prepare(module: torch.nn.Module, ctx: StepContext) -> torch.nn.Module:
    """Move a module to the run's device and memory format."""
    return place(module, ctx.device, ctx.channels_last)
