"""Optimiser and learning-rate schedule options shared by every step that trains."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Annotated, Iterable, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from distillcli.facts import Autocast

if TYPE_CHECKING:  # torch is imported where it is used: the options load without it (`distill validate`)
    import torch
    from torch import nn


MAX_EPOCHS = 100_000
MAX_LR = 1e12  # absurd, but finite: tests make training diverge on purpose with 1e12


class OptimConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    epochs: int = Field(1, ge=1, le=MAX_EPOCHS, description="passes over the training data (qat: of the fine-tune)")
    optimizer: Literal["sgd", "adamw"] = "sgd"
    lr: float = Field(0.1, gt=0, le=MAX_LR, description="peak learning rate")
    momentum: float = Field(0.9, ge=0, lt=1)
    nesterov: bool = False
    weight_decay: float = Field(5e-4, ge=0, le=1)
    schedule: Literal["cosine", "multistep", "constant"] = "cosine"
    milestones: list[Annotated[int, Field(ge=1, le=MAX_EPOCHS)]] | None = Field(
        None, max_length=1000,
        description="multistep: epochs at which lr is multiplied by gamma (default: 50 % and 75 % of epochs)")
    gamma: float = Field(0.1, gt=0, le=1)
    warmup_epochs: float = Field(0.0, ge=0, le=MAX_EPOCHS, description="linear warm-up from lr/100, in (fractional) "
                                                                       "epochs")
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    precision: Literal["auto", Autocast] = Field(
        "auto", description="autocast of the forward passes: auto (the device's default: fp32 on CPU and CUDA "
                            "until measured otherwise), fp32, bf16 (CPU or CUDA), fp16 (CUDA only, loss-scaled)")
    compile: bool = Field(False, description="torch.compile the student's and the teacher's forward for this loop "
                                             "(falls back to eager, with a warning, if compilation fails)")

    @model_validator(mode="after")
    def _check(self) -> "OptimConfig":
        if self.warmup_epochs > self.epochs:
            raise ValueError(f"warmup_epochs ({self.warmup_epochs}) exceeds epochs ({self.epochs})")
        if self.milestones and max(self.milestones) > self.epochs:
            raise ValueError(f"milestones {self.milestones} go beyond epochs ({self.epochs})")
        return self


def training_options(cfg: BaseModel) -> list[OptimConfig]:
    """The training-loop options inside a step's options (the step's own, a nested fine-tune's)."""
    found = [cfg] if isinstance(cfg, OptimConfig) else []
    return found + [v for v in vars(cfg).values() if isinstance(v, OptimConfig)]


def make_optimizer(params: Iterable[nn.Parameter], cfg: OptimConfig) -> torch.optim.Optimizer:
    import torch

    params = [p for p in params if p.requires_grad]
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov and cfg.momentum > 0,
                           weight_decay=cfg.weight_decay)


def lr_factor(cfg: OptimConfig, step: int, steps_per_epoch: int) -> float:
    """Multiplier of the peak lr at optimiser step ``step`` (0-based), stepped per batch."""
    epoch = step / steps_per_epoch
    warm = cfg.warmup_epochs
    if warm > 0 and epoch < warm:
        return 0.01 + 0.99 * epoch / warm
    if cfg.schedule == "constant":
        return 1.0
    if cfg.schedule == "multistep":
        milestones = cfg.milestones or [max(1, round(cfg.epochs * 0.5)), max(1, round(cfg.epochs * 0.75))]
        return cfg.gamma ** sum(epoch >= m for m in milestones)
    span = max(cfg.epochs - warm, 1e-9)
    return 0.5 * (1.0 + math.cos(math.pi * min((epoch - warm) / span, 1.0)))


def make_scheduler(optimizer: torch.optim.Optimizer, cfg: OptimConfig, steps_per_epoch: int) -> torch.optim.lr_scheduler.LambdaLR:
    import torch

    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(cfg, s, steps_per_epoch))
