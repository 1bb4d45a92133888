"""Objectives chosen by name, in one place, with one distillation option block.

Every step that distils (distill, the fine-tunes of prune and share, QAT) declares its
options by inheriting ``KDOptions``, so the names and defaults are the same everywhere,
and builds its objective with ``make_objective``.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from distillcli.errors import OptionError
from distillcli.losses.registry import LOSSES, Objective


class KDOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    temperature: float = Field(4.0, gt=0, le=100, description="distillation: softmax temperature T of both "
                                                              "models' logits")
    alpha: float = Field(0.9, ge=0, le=1, description="distillation: weight of the soft (teacher) term; "
                                                      "1 - alpha weighs the labels")


def make_objective(name: str, teacher: nn.Module | None = None, kd: KDOptions | None = None,
                   label_smoothing: float = 0.0) -> Objective:
    """The objective registered as ``name``: "ce" (labels only) or a distillation loss from ``teacher``."""
    factory = LOSSES.get(name)
    if name == "ce":
        return factory(label_smoothing)
    if teacher is None:
        raise OptionError(f"the {name!r} objective distils from a teacher, and there is none here",
                          "add a teacher, or train on the labels alone")
    kd = kd or KDOptions()
    return factory(teacher, kd.temperature, kd.alpha, label_smoothing)
