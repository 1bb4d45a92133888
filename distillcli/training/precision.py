"""Mixed precision for the training loop: autocast of the forward passes and, for fp16, loss
scaling (bf16 has fp32's exponent range and needs none). The scaler's state is part of the
loop's state, so a resumed fp16 loop continues with the same scale."""

from __future__ import annotations

import contextlib
from typing import Any, ContextManager

import torch

from distillcli.facts import Autocast

_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


class MixedPrecision:
    def __init__(self, precision: Autocast, device: torch.device) -> None:
        self.precision = precision
        self.device_type = device.type
        self.scaler = torch.amp.GradScaler(device.type) if precision == "fp16" else None

    def autocast(self) -> ContextManager[Any]:
        dtype = _DTYPES.get(self.precision)
        return torch.autocast(self.device_type, dtype=dtype) if dtype is not None else contextlib.nullcontext()

    def backward(self, loss: torch.Tensor) -> None:
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()

    def unscale(self, optimizer: torch.optim.Optimizer) -> None:
        """Bring the gradients to their true scale (before hooks and averaging read them)."""
        if self.scaler is not None:
            self.scaler.unscale_(optimizer)

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        """The optimiser step; with fp16 skipped when a gradient overflowed, and the scale adapted."""
        if self.scaler is None:
            optimizer.step()
            return
        self.scaler.step(optimizer)
        self.scaler.update()

    def state_dict(self) -> dict[str, Any] | None:
        return self.scaler.state_dict() if self.scaler is not None else None

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        if self.scaler is not None and state:
            self.scaler.load_state_dict(state)
