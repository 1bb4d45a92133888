"""torch.compile for the duration of one training loop.

Each module's ``forward`` is replaced on the instance by a compiled one, so forward hooks,
feature taps, DDP and state_dict keys see the same module, and restored when the loop ends,
so measuring, saving and later steps use the eager model. Compilation happens at a module's
first call; if it fails (no C++ compiler, an unsupported operation), every module runs eagerly
from then on and ``on_failure`` hears it once: a speed option should not stop a run.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
from torch import nn
from torch._dynamo.exc import TorchDynamoException


class _CompiledForward:
    def __init__(self, eager: Callable[..., Any], owner: "CompiledForwards") -> None:
        self.eager, self.owner = eager, owner
        self.compiled = torch.compile(eager)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if not self.owner.failed:
            try:
                return self.compiled(*args, **kwargs)
            except TorchDynamoException as e:  # compile errors only; errors of the model itself propagate
                self.owner.fail(e)
        return self.eager(*args, **kwargs)


class CompiledForwards:
    def __init__(self, modules: Sequence[nn.Module], on_failure: Callable[[str], None]) -> None:
        self.failed = False
        self._on_failure = on_failure
        self._saved: list[tuple[nn.Module, Any]] = []
        for module in modules:
            self._saved.append((module, module.__dict__.get("forward")))
            module.forward = _CompiledForward(module.forward, self)  # type: ignore[method-assign]

    @property
    def active(self) -> bool:
        return bool(self._saved) and not self.failed

    def fail(self, error: Exception) -> None:
        self.failed = True
        first = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
        self._on_failure(f"torch.compile failed, training on without it ({type(error).__name__}: {first})")

    def restore(self) -> None:
        for module, previous in self._saved:
            if previous is None:
                del module.__dict__["forward"]
            else:
                module.forward = previous  # type: ignore[method-assign]
        self._saved = []
