"""Ctrl-C during a run: stop cleanly at a point a checkpoint can describe."""

from __future__ import annotations

import signal
from typing import Any


class InterruptHandler:
    """Ctrl-C: the first asks the running training loop to checkpoint and stop after its
    batch; outside a loop (or on a second Ctrl-C) it stops at once."""

    def __init__(self) -> None:
        self.requested = False
        self.in_loop = False
        self._previous: Any = None

    def __enter__(self) -> "InterruptHandler":
        try:
            self._previous = signal.signal(signal.SIGINT, self._handle)
        except ValueError:  # not the main thread: keep Python's default
            self._previous = None
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested or not self.in_loop:
            raise KeyboardInterrupt
        self.requested = True
