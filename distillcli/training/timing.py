"""How long a module's forward passes take, from forward pre/post hooks (the teacher's share
of a distillation loop). On CUDA the kernels run asynchronously, so the hooks record CUDA
events instead of reading the clock; they are read when the loop syncs anyway (its running
sums), so timing adds no synchronisation of its own."""

from __future__ import annotations

import time
from typing import Any

import torch
from torch import nn


class ForwardTimer:
    def __init__(self, module: nn.Module, device: torch.device, seconds: float = 0.0) -> None:
        self._seconds = seconds
        self._cuda = device.type == "cuda"
        self._start: Any = None
        self._pending: list[tuple[torch.cuda.Event, torch.cuda.Event]] = []
        self._handles = [module.register_forward_pre_hook(self._before), module.register_forward_hook(self._after)]

    def _mark(self) -> Any:
        if not self._cuda:
            return time.perf_counter()
        event = torch.cuda.Event(enable_timing=True)
        event.record()
        return event

    def _before(self, module: nn.Module, args: Any) -> None:
        self._start = self._mark()

    def _after(self, module: nn.Module, args: Any, output: Any) -> None:
        end = self._mark()
        if self._cuda:
            self._pending.append((self._start, end))
        else:
            self._seconds += end - self._start

    def seconds(self) -> float:
        """Total forward time so far (waits for the recorded CUDA work)."""
        for start, end in self._pending:
            end.synchronize()
            self._seconds += start.elapsed_time(end) / 1000.0
        self._pending.clear()
        return self._seconds

    def reset(self, seconds: float = 0.0) -> None:
        self.seconds()
        self._seconds = seconds

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
