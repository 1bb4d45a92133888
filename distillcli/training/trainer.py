"""The one training loop every step uses (train, distill, pruning and QAT fine-tunes ...).

All of the loop's state lives on the Trainer (model, objective, optimiser, schedule, epoch,
hooks), so checkpoints and resume have one place to read it from. Compression methods
plug in through hooks instead of copying the loop.
"""

from __future__ import annotations

import math
import time
from typing import Any, Protocol, Sequence

import torch
from torch import nn

from distillcli.data.bundle import DataBundle
from distillcli.errors import RunFailure
from distillcli.losses.registry import Objective
from distillcli.measure import evaluate
from distillcli.progress import Progress, SilentProgress
from distillcli.training.optim import OptimConfig, make_optimizer, make_scheduler


class TrainHook(Protocol):
    """Optional callbacks; implement the ones you need (all default to doing nothing)."""

    def after_backward(self, model: nn.Module) -> None: ...

    def after_step(self, model: nn.Module, step: int) -> None: ...

    def on_epoch_end(self, model: nn.Module, epoch: int) -> None: ...


def _call(hooks: Sequence[Any], name: str, *args: Any) -> None:
    for hook in hooks:
        fn = getattr(hook, name, None)
        if fn is not None:
            fn(*args)


class Trainer:
    def __init__(self, model: nn.Module, objective: Objective, data: DataBundle, cfg: OptimConfig,
                 progress: Progress | None = None, hooks: Sequence[Any] = (), title: str = "train") -> None:
        self.model, self.objective, self.data, self.cfg = model, objective, data, cfg
        self.progress = progress or SilentProgress()
        self.hooks = list(hooks)
        self.title = title
        for p in model.parameters():
            p.requires_grad_(True)
        params = list(model.parameters()) + [p for m in objective.extra_modules() for p in m.parameters()]
        self.optimizer = make_optimizer(params, cfg)
        self.steps_per_epoch = max(1, len(data.train))
        self.scheduler = make_scheduler(self.optimizer, cfg, self.steps_per_epoch)
        self.epoch = 0
        self.step = 0
        self.curve: list[dict[str, Any]] = []

    def fit(self) -> list[dict[str, Any]]:
        """Train for the configured epochs; returns the per-epoch curve."""
        while self.epoch < self.cfg.epochs:
            self.curve.append(self._epoch())
            self.epoch += 1
        self.model.eval()
        return self.curve

    def _epoch(self) -> dict[str, Any]:
        model, loader = self.model, self.data.train
        loader.set_epoch(self.epoch)
        model.train()
        for m in self.objective.extra_modules():
            m.train()
        title = f"{self.title} epoch {self.epoch + 1}/{self.cfg.epochs}"
        self.progress.start(title, len(loader))
        # running sums stay on the device: no host sync per step (only at progress updates)
        loss_sum: torch.Tensor | float = 0.0
        correct: torch.Tensor | int = 0
        seen = 0
        lr = self.optimizer.param_groups[0]["lr"]
        t0 = time.perf_counter()
        for i, (images, labels, indices) in enumerate(loader):
            loss, logits = self.objective(model, images, labels, indices)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            _call(self.hooks, "after_backward", model)
            self.optimizer.step()
            self.scheduler.step()
            self.step += 1
            _call(self.hooks, "after_step", model, self.step)
            n = labels.numel()
            loss_sum = loss_sum + loss.detach().float() * n
            correct = correct + (logits.detach().argmax(1) == labels).sum()
            seen += n
            if i % 10 == 9:
                self.progress.update(i + 1, loss=float(loss_sum) / seen, acc=100.0 * int(correct) / seen,
                                     img_s=seen / (time.perf_counter() - t0))
        seconds = time.perf_counter() - t0
        train_loss = float(loss_sum) / max(seen, 1)
        if not math.isfinite(train_loss):
            raise RunFailure(f"{self.title}: the loss became {train_loss} in epoch {self.epoch + 1}",
                             "lower the learning rate (lr) or add warm-up (warmup_epochs)")
        _call(self.hooks, "on_epoch_end", model, self.epoch)
        val = evaluate(model, self.data.val, self.data.num_classes)
        model.train()
        row = {"epoch": self.epoch + 1, "lr": lr, "train_loss": train_loss,
               "train_top1": 100.0 * int(correct) / max(seen, 1), "val_loss": val["loss"],
               "val_top1": val["top1"], "val_top5": val["top5"], "images_per_s": seen / max(seconds, 1e-9),
               "seconds": seconds}
        self.progress.finish(loss=train_loss, val_top1=val["top1"] or 0.0, img_s=row["images_per_s"])
        return row
