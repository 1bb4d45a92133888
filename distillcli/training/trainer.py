"""The one training loop every step uses (train, distill, pruning and QAT fine-tunes ...).

All of the loop's state lives on the Trainer (model, objective, optimiser, schedule, epoch,
batch position, running sums, hooks), and ``state_dict`` / ``load_state_dict`` capture and
restore all of it, so a loop stopped at any batch continues exactly where it was.
Speed options (``precision``, ``compile``) and the teacher's timer live here too, for the
loop's duration only: the models leave the loop as they came in.
Compression methods plug in through hooks instead of copying the loop; a hook that holds
state (pruning masks, shared centroids) exposes ``state_dict`` / ``load_state_dict`` too.
"""

from __future__ import annotations

import math
import time
from typing import Any, Callable, Protocol, Sequence

import torch
from torch import nn

from distillcli.data.bundle import DataBundle
from distillcli.errors import Interrupted, RunFailure
from distillcli.losses.terms import Objective
from distillcli.measure import evaluate
from distillcli.progress import Progress, SilentProgress
from distillcli.record import EpochRecord
from distillcli.runtime import Distributed, resolve_precision
from distillcli.training.checkpoint import rng_state, set_rng_state
from distillcli.training.compiling import CompiledForwards
from distillcli.training.precision import MixedPrecision
from distillcli.training.timing import ForwardTimer
from distillcli.training.optim import OptimConfig, lr_factor, make_optimizer, make_scheduler


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


def teacher_of(objective: Objective) -> nn.Module | None:
    """The frozen teacher an objective runs, which it exposes as ``teacher`` (None: no teacher)."""
    teacher = getattr(objective, "teacher", None)
    return teacher if isinstance(teacher, nn.Module) else None


def _cpu_copy(state: dict[str, Any]) -> dict[str, Any]:
    return {k: v.detach().to("cpu", copy=True) if isinstance(v, torch.Tensor) else v for k, v in state.items()}


_EMPTY_SUMS: dict[str, float] = {"loss": 0.0, "correct": 0, "seen": 0, "seconds": 0.0, "teacher": 0.0}


class LoopControl:
    """What the engine lets a loop know: when to checkpoint and whether to stop."""

    def __init__(self, save: Callable[[dict[str, Any]], None] | None = None,
                 due_in_epoch: Callable[[], bool] = lambda: False,
                 due_at_epoch_end: Callable[[int], bool] = lambda epochs: False,
                 interrupted: Callable[[], bool] = lambda: False) -> None:
        self.save, self.due_in_epoch, self.due_at_epoch_end, self.interrupted = (
            save, due_in_epoch, due_at_epoch_end, interrupted)


class Trainer:
    def __init__(self, model: nn.Module, objective: Objective, data: DataBundle, cfg: OptimConfig,
                 progress: Progress | None = None, hooks: Sequence[Any] = (), title: str = "train",
                 dist: Distributed | None = None, on_epoch: Callable[[EpochRecord], None] | None = None) -> None:
        """``on_epoch`` sees every epoch's record as it is appended (e.g. for a tracker)."""
        self.model, self.objective, self.data, self.cfg = model, objective, data, cfg
        self.on_epoch = on_epoch
        self.progress = progress or SilentProgress()
        self.hooks = list(hooks)
        self.title = title
        self.dist = dist or Distributed()
        for p in model.parameters():
            p.requires_grad_(True)
        self.extras = list(objective.extra_modules())
        params = list(model.parameters()) + [p for m in self.extras for p in m.parameters()]
        self.optimizer = make_optimizer(params, cfg)
        self.steps_per_epoch = max(1, len(data.train))
        self.scheduler = make_scheduler(self.optimizer, cfg, self.steps_per_epoch)
        self.epoch = 0  # epochs finished
        self.batch = 0  # batches finished in the current epoch
        self.step = 0  # optimiser steps
        self.sums: dict[str, float] = dict(_EMPTY_SUMS)
        self.curve: list[EpochRecord] = []
        self.done = False
        self.net = self.dist.wrap(model)
        device = next(model.parameters()).device
        self.device = device
        self.precision = MixedPrecision(resolve_precision(cfg.precision, device), device)
        self.teacher = teacher_of(objective)
        self._timer: ForwardTimer | None = None
        self._compiled: CompiledForwards | None = None

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue (or, once done, to skip) this loop; CPU copies."""
        state: dict[str, Any] = {
            "done": self.done, "title": self.title, "epoch": self.epoch, "batch": self.batch, "step": self.step,
            "sums": dict(self.sums), "curve": [r.model_dump() for r in self.curve],
            "model": _cpu_copy(self.model.state_dict()),
            "extras": [_cpu_copy(m.state_dict()) for m in self.extras],
            "hooks": [hook.state_dict() if hasattr(hook, "state_dict") else None for hook in self.hooks],
            "rng": rng_state(), "loader_epoch": self.data.train.epoch,
        }
        if not self.done:
            state["optimizer"] = self.optimizer.state_dict()
            state["scheduler"] = self.scheduler.state_dict()
            scaler = self.precision.state_dict()
            if scaler is not None:
                state["scaler"] = scaler
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        for module, saved in zip(self.extras, state["extras"]):
            module.load_state_dict(saved)
        for hook, saved in zip(self.hooks, state["hooks"]):
            if saved is not None:
                hook.load_state_dict(saved)
        if "optimizer" in state:
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            self.precision.load_state_dict(state.get("scaler"))
        self.epoch, self.batch, self.step = state["epoch"], state["batch"], state["step"]
        self.sums = dict(state["sums"])
        self.curve = [EpochRecord(**r) for r in state["curve"]]
        self.done = state["done"]
        self.data.train.set_epoch(state["loader_epoch"])
        set_rng_state(state["rng"])

    # ------------------------------------------------------------------ loop
    def fit(self, control: LoopControl | None = None) -> list[EpochRecord]:
        """Train to the configured number of epochs (from wherever the state stands)."""
        control = control or LoopControl()
        teacher = self.teacher
        self._timer = ForwardTimer(teacher, self.device) if teacher is not None else None
        if self.cfg.compile:
            self._compiled = CompiledForwards([self.model] + ([teacher] if teacher is not None else []),
                                              lambda text: self.progress.message(f"warning: {self.title}: {text}"))
        try:
            while self.epoch < self.cfg.epochs:
                self._epoch(control)
        except torch.OutOfMemoryError:
            raise RunFailure(f"{self.title}: out of memory at batch size {self.data.train.batch_size}"
                             if hasattr(self.data.train, "batch_size") else f"{self.title}: out of memory",
                             "lower data.batch_size (e.g. --set data.batch_size=64) or use a smaller model") from None
        finally:
            if self._timer is not None:
                self._timer.remove()
            if self._compiled is not None:
                self._compiled.restore()
        self.done = True
        self.model.eval()
        return self.curve

    def _check_finite(self, loss_sum: float, seen: float) -> None:
        if not math.isfinite(loss_sum):
            raise RunFailure(
                f"{self.title}: the loss became {loss_sum / max(seen, 1):.4g} in epoch {self.epoch + 1} "
                f"(batch {self.batch}); the run stopped and its last good checkpoint is kept",
                "lower the learning rate (lr) or add warm-up (warmup_epochs), then rerun")

    def _save(self, control: LoopControl) -> None:
        if control.save is not None:
            control.save(self.state_dict())

    def _epoch(self, control: LoopControl) -> None:
        model, loader = self.model, self.data.train
        loader.set_epoch(self.epoch)
        set_epoch = getattr(self.objective, "set_epoch", None)
        if set_epoch is not None:  # epoch-scheduled objectives (DKD's warm-up)
            set_epoch(self.epoch)
        model.train()
        for m in self.extras:
            m.train()
        title = f"{self.title} epoch {self.epoch + 1}/{self.cfg.epochs}"
        self.progress.start(title, len(loader))
        if self.batch:
            self.progress.message(f"{title}: resumed at batch {self.batch}/{len(loader)}")
        # running sums stay on the device: no host sync per step (only at progress updates)
        loss_sum: torch.Tensor | float = self.sums["loss"]
        correct: torch.Tensor | int = int(self.sums["correct"])
        seen = int(self.sums["seen"])
        lr = self._epoch_lr()
        timer = self._timer
        if timer is not None:
            timer.reset(self.sums.get("teacher", 0.0))
        t0 = time.perf_counter() - self.sums["seconds"]

        def remember() -> None:
            self.sums = {"loss": float(loss_sum), "correct": int(correct), "seen": seen,
                         "seconds": time.perf_counter() - t0, "teacher": timer.seconds() if timer else 0.0}

        for images, labels, indices in loader.iter_from(self.batch):
            with self.precision.autocast():
                loss, logits = self.objective(self.net, images, labels, indices)
            self.optimizer.zero_grad(set_to_none=True)
            self.precision.backward(loss)
            self.precision.unscale(self.optimizer)
            self.dist.average_gradients(self.extras)
            _call(self.hooks, "after_backward", model)
            self.precision.step(self.optimizer)
            self.scheduler.step()
            self.step += 1
            self.batch += 1
            _call(self.hooks, "after_step", model, self.step)
            n = labels.numel()
            loss_sum = loss_sum + loss.detach().float() * n
            correct = correct + (logits.detach().argmax(1) == labels).sum()
            seen += n
            if self.batch % 10 == 0 or control.interrupted():
                remember()
                self._check_finite(self.sums["loss"], seen)
                self.progress.update(self.batch, loss=self.sums["loss"] / seen,
                                     acc=100.0 * self.sums["correct"] / seen, img_s=seen / max(self.sums["seconds"], 1e-9))
                if control.interrupted():
                    self._save(control)
                    raise Interrupted(f"{title}: stopped at batch {self.batch}/{len(loader)}")
                if control.due_in_epoch():
                    self._save(control)
        remember()
        self._check_finite(self.sums["loss"], seen)
        totals = self.dist.sum([self.sums["loss"], self.sums["correct"], seen])
        seconds, teacher_seconds = self.sums["seconds"], self.sums["teacher"]
        train_loss = totals[0] / max(totals[2], 1)
        _call(self.hooks, "on_epoch_end", model, self.epoch)
        measured = self._measure_splits()
        model.train()
        row = EpochRecord(epoch=self.epoch + 1, lr=lr, train_loss=train_loss,
                          train_top1=100.0 * totals[1] / max(totals[2], 1), **measured,
                          images_per_s=totals[2] / max(seconds, 1e-9), seconds=seconds,
                          teacher_seconds=teacher_seconds if timer is not None else None,
                          precision=self.precision.precision,
                          compiled=self._compiled is not None and self._compiled.active)
        self.curve.append(row)
        if self.on_epoch is not None:
            self.on_epoch(row)
        self.epoch += 1
        self.batch = 0
        self.sums = dict(_EMPTY_SUMS)
        tops = {k: v for k in ("val_top1", "test_top1") if (v := measured.get(k)) is not None}
        self.progress.finish(loss=train_loss, **tops, img_s=row.images_per_s)
        if control.due_at_epoch_end(self.epoch) and self.epoch < self.cfg.epochs:
            self._save(control)

    def _measure_splits(self) -> dict[str, Any]:
        """The epoch's val_* (the validation split data.val_split holds out, when set) and test_* (the test
        split; not in a search, whose ``val`` loader is the validation split)."""
        select, test = self.data.select, self.data.val
        measured: dict[str, Any] = {}
        for name, loader in (("val", select), ("test", test if test is not select else None)):
            if loader is not None:
                out = evaluate(self.model, loader, self.data.num_classes, self.dist)
                measured.update({f"{name}_{k}": out[k] for k in ("loss", "top1", "top5")})
        return measured

    def _epoch_lr(self) -> float:
        """The learning rate at the epoch's first step (what LambdaLR set; also for a resumed epoch)."""
        return self.cfg.lr * lr_factor(self.cfg, self.epoch * self.steps_per_epoch, self.steps_per_epoch)
