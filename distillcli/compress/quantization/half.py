"""Half-precision weights, the cheap option: half the file, no calibration, ~no accuracy loss.

bf16 stores and computes in bfloat16 (fast on CPUs with AVX512-BF16 or AMX, and on GPUs). fp16
made for the CPU stores the weights in float16 but computes in float32: CPUs have no fast fp16
convolutions (measured here: 3-8x slower than fp32), so the program upcasts each weight as it
reads it (a constant that compilation folds away). fp16 made for a GPU computes in float16, what
its tensor cores are for. Inputs and outputs stay float32 either way.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from distillcli.compress.export.program import export_program
from distillcli.facts import HalfKind


class _Upcast(nn.Module):
    """Parametrization: stored in float16, read as float32."""

    def forward(self, stored: Tensor) -> Tensor:
        return stored.float()


class _CastIO(nn.Module):
    """Runs ``model`` in ``dtype`` behind a float32 interface."""

    def __init__(self, model: nn.Module, dtype: torch.dtype) -> None:
        super().__init__()
        self.model, self.dtype = model, dtype

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x.to(self.dtype)).float()


def computes_in(kind: HalfKind, for_gpu: bool) -> torch.dtype:
    """The dtype a ``kind`` program's layers compute in, made for a GPU or for the CPU."""
    return torch.bfloat16 if kind == "bf16" else torch.float16 if for_gpu else torch.float32


def half_program(model: nn.Module, kind: HalfKind, example: Tensor,
                 for_gpu: bool = False) -> torch.export.ExportedProgram:
    """An exported program with ``kind`` weights, computing in ``computes_in(kind, for_gpu)``
    (``model`` itself is left unchanged). The program is on the CPU; a GPU run moves it there."""
    half = copy.deepcopy(model).to("cpu").eval()
    dtype = computes_in(kind, for_gpu)
    if dtype != torch.float32:
        wrapped: nn.Module = _CastIO(half.to(dtype), dtype)
    else:
        for module in list(half.modules()):
            for name, param in list(module.named_parameters(recurse=False)):
                if param.is_floating_point():
                    setattr(module, name, nn.Parameter(param.detach().half(), requires_grad=False))
                    parametrize.register_parametrization(module, name, _Upcast(), unsafe=True)
        wrapped = half
    return export_program(wrapped, example.to("cpu"))
