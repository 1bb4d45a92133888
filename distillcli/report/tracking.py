"""Experiment tracking: the engine reports epochs and steps to a ``Tracker``.

``report.tensorboard: true`` writes TensorBoard event files to ``<run_dir>/tensorboard/``;
otherwise the tracker does nothing and tensorboard is never imported (it is optional).
The x-axis of every per-epoch scalar is the epoch counted across the whole run, so the
loops of all steps lie side by side; step summaries use the step's index.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, Sequence

from distillcli.errors import OptionError
from distillcli.record import EpochRecord, StepRecord
from distillcli.report.markdown import human_count


class Tracker(Protocol):
    def begin_step(self, prefix: str, epochs_before: int) -> None:
        """A step starts: its tag prefix, and the run's epochs before its next one."""
        ...

    def epoch(self, row: EpochRecord) -> None: ...

    def step(self, entry: StepRecord, steps: Sequence[StepRecord]) -> None:
        """A step ended; ``steps``: every step so far (this one included)."""
        ...

    def close(self) -> None: ...


class NullTracker:
    def begin_step(self, prefix: str, epochs_before: int) -> None:
        pass

    def epoch(self, row: EpochRecord) -> None:
        pass

    def step(self, entry: StepRecord, steps: Sequence[StepRecord]) -> None:
        pass

    def close(self) -> None:
        pass


def summary_writer_class() -> Any:
    """torch's SummaryWriter; a missing tensorboard package is the user's to install."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise OptionError("report.tensorboard: true needs the tensorboard package, which is not installed",
                          "pip install tensorboard (or set report.tensorboard: false)") from None
    return SummaryWriter


class TensorBoardTracker:
    def __init__(self, folder: Path) -> None:
        self.writer = summary_writer_class()(log_dir=str(folder))
        self.prefix, self.global_epoch = "train", 0

    def begin_step(self, prefix: str, epochs_before: int) -> None:
        self.prefix, self.global_epoch = prefix, epochs_before

    def epoch(self, row: EpochRecord) -> None:
        self.global_epoch += 1
        values = {"train/loss": row.train_loss, "train/top1": row.train_top1, "val/loss": row.val_loss,
                  "val/top1": row.val_top1, "test/loss": row.test_loss, "test/top1": row.test_top1, "lr": row.lr,
                  "images_per_s": row.images_per_s}
        for tag, value in values.items():
            if value is not None:
                self.writer.add_scalar(f"{self.prefix}/{tag}", value, self.global_epoch)
        self.writer.flush()

    def step(self, entry: StepRecord, steps: Sequence[StepRecord]) -> None:
        m = entry.measures
        values: dict[str, float | None] = {"top1": m.top1, "params": m.params, "macs": m.macs}
        values.update({f"latency_ms_b{b}": ms for b, ms in m.latency_ms.items()})
        for tag, value in values.items():
            if value is not None:
                self.writer.add_scalar(f"steps/{tag}", value, entry.index)
        self.writer.add_text("steps", steps_table(steps), entry.index)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def steps_table(steps: Sequence[StepRecord]) -> str:
    """A markdown table of the steps so far (TensorBoard's text tab renders it)."""
    batches = sorted({int(b) for s in steps for b in s.measures.latency_ms})
    head = ["#", "step", "model", "top-1 %", "params", "MACs"] + [f"ms b{b}" for b in batches]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for s in steps:
        m = s.measures
        row = [str(s.index), s.kind, s.target, "-" if m.top1 is None else f"{m.top1:.2f}",
               human_count(m.params), human_count(m.macs)]
        row += ["-" if (ms := m.latency_ms.get(str(b))) is None else f"{ms:.2f}" for b in batches]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def open_tracker(enabled: bool, run_dir: Path | None) -> Tracker:
    """TensorBoard under ``run_dir`` when enabled and there is one (rank 0's concern: the caller's)."""
    if not enabled or run_dir is None:
        return NullTracker()
    return TensorBoardTracker(run_dir / "tensorboard")
