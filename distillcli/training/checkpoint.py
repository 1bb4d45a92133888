"""Checkpoints: one ``state.pt`` per run, rewritten atomically, readable with
``torch.load(weights_only=True)`` (plain containers, numbers, strings and tensors only).

The pipeline decides what goes in (models at the start of the step in progress, the record
so far, the states of the step's training loops); this module owns writing, reading, the
write cadence, and the random-number states every resume must restore.
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from distillcli.atomic_write import atomic_path, remove_stale_temps
from distillcli.errors import ModelFileError

CHECKPOINT_FORMAT = "distillcli.checkpoint"
CHECKPOINT_VERSION = 1
STATE_FILE = "state.pt"


def rng_state() -> dict[str, Any]:
    """Every random generator a run draws from, as tensors and plain lists."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    state: dict[str, Any] = {
        "python": [version, list(internal), gauss_next],
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(gauss)],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class Checkpointer:
    """Writes the run's state into ``folder`` every ``every_epochs`` epochs and/or every
    ``every_minutes`` minutes of training (mid-epoch), and at every step boundary.
    ``folder=None`` keeps nothing (one-off file commands)."""

    def __init__(self, folder: Path | None, every_epochs: int | None = 1, every_minutes: float | None = None) -> None:
        self.folder = folder
        self.every_epochs = every_epochs
        self.every_minutes = every_minutes
        self._last_write = time.monotonic()
        self.writes = 0
        self.write_seconds = 0.0

    @property
    def enabled(self) -> bool:
        return self.folder is not None

    def due_in_epoch(self) -> bool:
        """True when the minutes-based cadence asks for a mid-epoch checkpoint now."""
        return (self.enabled and self.every_minutes is not None
                and time.monotonic() - self._last_write >= 60.0 * self.every_minutes)

    def due_at_epoch_end(self, epochs_done: int) -> bool:
        return self.enabled and self.every_epochs is not None and epochs_done % self.every_epochs == 0

    def write(self, state: dict[str, Any]) -> None:
        if self.folder is None:
            return
        t0 = time.perf_counter()
        payload = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, **state}
        with atomic_path(self.folder / STATE_FILE) as tmp:
            torch.save(payload, tmp)
        self.writes += 1
        self.write_seconds += time.perf_counter() - t0
        self._last_write = time.monotonic()

    def read(self) -> dict[str, Any] | None:
        """The last complete checkpoint, or None when the run has none yet."""
        if self.folder is None:
            return None
        remove_stale_temps(self.folder)
        path = self.folder / STATE_FILE
        if not path.is_file():
            return None
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:
            raise ModelFileError(f"cannot read the checkpoint {path}: {str(e).splitlines()[0][:160]}",
                                 "the file is damaged; start the run again with --force") from None
        if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
            raise ModelFileError(f"{path} is not a distillcli checkpoint", "start the run again with --force")
        if state.get("version", 0) > CHECKPOINT_VERSION:
            raise ModelFileError(f"{path} was written by a newer distillcli", "upgrade distillcli to resume it")
        return state
