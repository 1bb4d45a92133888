"""The training seam: steps call ``ctx.fit(model, objective, cfg, hooks)`` and this runs it.

A step may train several times (iterative pruning: one fine-tune per round). The session
numbers a step's loops in call order and keeps each one's state: a finished loop's final
state, the running loop's latest. Resuming re-runs the step from its start with the same
inputs and random state: each loop that had finished is replaced by its saved end state
(no training), and the one that was running continues from its saved batch. Because the
work between loops (pruning, clustering, calibration) is deterministic given those inputs,
the resumed step ends exactly where an uninterrupted one would.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from torch import nn

from distillcli.data.bundle import DataBundle
from distillcli.losses.terms import Objective
from distillcli.progress import Progress, SilentProgress
from distillcli.record import EpochRecord
from distillcli.runtime import Distributed
from distillcli.training.checkpoint import Checkpointer
from distillcli.training.optim import OptimConfig
from distillcli.training.trainer import LoopControl, Trainer

SaveFn = Callable[[list[dict[str, Any]]], None]


class FitSession:
    def __init__(self, data: DataBundle, progress: Progress | None = None, dist: Distributed | None = None,
                 checkpointer: Checkpointer | None = None, save: SaveFn | None = None,
                 interrupted: Callable[[], bool] = lambda: False,
                 on_epoch: Callable[[EpochRecord], None] | None = None) -> None:
        self.data, self.progress = data, progress or SilentProgress()
        self.on_epoch = on_epoch  # sees each epoch trained (not those a resume restores)
        self.dist = dist or Distributed()
        self.checkpointer = checkpointer or Checkpointer(None)
        self._save, self.interrupted = save, interrupted
        self.states: list[dict[str, Any]] = []  # this step's loops, in call order
        self._saved: list[dict[str, Any]] = []  # from a checkpoint, to replay

    def begin_step(self, saved: Sequence[dict[str, Any]] = ()) -> None:
        self.states, self._saved = [], list(saved)

    def __call__(self, model: nn.Module, objective: Objective, cfg: OptimConfig, hooks: Sequence[Any] = (),
                 title: str = "train") -> list[EpochRecord]:
        k = len(self.states)
        trainer = Trainer(model, objective, self.data, cfg, self.progress, hooks, title, self.dist, self.on_epoch)
        self.states.append({})
        if k < len(self._saved):
            trainer.load_state_dict(self._saved[k])
            if trainer.done:
                self.progress.message(f"{title}: restored from the checkpoint ({trainer.epoch} epochs)")
                self.states[k] = self._saved[k]
                model.eval()
                return trainer.curve

        def save(state: dict[str, Any]) -> None:
            self.states[k] = state
            if self._save is not None:
                self._save(self.states)

        control = LoopControl(save if self.checkpointer.enabled else None, self.checkpointer.due_in_epoch,
                              self.checkpointer.due_at_epoch_end, self.interrupted)
        curve = trainer.fit(control)
        self.states[k] = trainer.state_dict()
        return curve
