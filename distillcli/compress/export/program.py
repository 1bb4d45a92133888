"""Capture a model as a torch.export program with a dynamic batch dimension (the file format
and the runtime wrapper live in ``modelfile.program``); a failure names the layer that
torch.export cannot capture.
"""

from __future__ import annotations

import copy
from functools import partial

import torch
from torch import Tensor, nn

from distillcli.errors import CompressionError
from distillcli.modelfile.program import ProgramModule, compile_default
from distillcli.models.handle import ModelHandle
from distillcli.quiet import quiet

MAX_BATCH = 1 << 16


def _record_call(calls: dict[str, tuple[tuple, dict]], name: str, module: nn.Module, args: tuple,
                 kwargs: dict) -> None:
    calls.setdefault(name, (args, kwargs))


def untraceable_layer(module: nn.Module, example: Tensor) -> str | None:
    """The innermost submodule that torch.export cannot capture on its own, found by
    exporting the children of each failing module in turn (None: no single layer is to blame)."""
    calls: dict[str, tuple[tuple, dict]] = {}
    hooks = [m.register_forward_pre_hook(partial(_record_call, calls, name), with_kwargs=True)
             for name, m in module.named_modules() if name]
    try:
        with torch.no_grad():
            module(example)
    except Exception:
        pass  # the calls recorded before the failure are enough to search
    finally:
        for h in hooks:
            h.remove()

    def fails(name: str) -> bool:
        args, kwargs = calls[name]
        try:
            with quiet():
                torch.export.export(module.get_submodule(name), args, kwargs)
            return False
        except Exception:
            return True

    current = ""
    while True:
        prefix = f"{current}." if current else ""
        children = [prefix + child for child, _ in module.get_submodule(current).named_children()]
        culprit = next((c for c in children if c in calls and fails(c)), None)
        if culprit is None:
            return current or None
        current = culprit


def cpu_copy(module: nn.Module) -> nn.Module:
    """The module itself when it is on the CPU, else a CPU copy (the caller's model stays put)."""
    on_cpu = all(t.device.type == "cpu" for t in [*module.parameters(), *module.buffers()])
    return module if on_cpu else copy.deepcopy(module).to("cpu")


def export_program(module: nn.Module, example: Tensor, strict: bool = False) -> torch.export.ExportedProgram:
    """Capture ``module`` (in its current train/eval mode) with a dynamic batch dimension; a
    failure names the layer torch.export cannot capture. ``strict`` traces with dynamo, which
    records each op's source module (``source_fn_stack``): QAT's fusion patterns need it."""
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    example = torch.cat([example[:1], example[:1]])  # two images: kept in the file as the sample input
    try:
        with quiet():
            return torch.export.export(module, (example,), dynamic_shapes=({0: batch},), strict=strict)
    except Exception as e:
        raise export_error(module, example, e) from None


def export_error(module: nn.Module, example: Tensor, error: Exception) -> CompressionError:
    reason = (str(error).strip().splitlines() or [type(error).__name__])[0][:300]
    layer = untraceable_layer(module, example)
    if layer is None:
        return CompressionError(f"torch.export cannot capture the model as one graph: {reason}",
                                "the forward must not branch on tensor values or fix the batch size; "
                                "rerun with DISTILL_DEBUG=1 for the full trace")
    kind = type(module.get_submodule(layer)).__name__
    return CompressionError(
        f"layer '{layer}' ({kind}) cannot be captured by torch.export, so the model cannot be quantized "
        f"or exported: {reason}",
        f"make the forward of {kind} traceable (no Python branches on tensor values, no .item() or numpy), "
        "or replace the layer; rerun with DISTILL_DEBUG=1 for the full trace")


def as_program(handle: ModelHandle, example: Tensor) -> ModelHandle:
    """An fp32 eager model as a ``pt2`` program; programs pass through unchanged."""
    if isinstance(handle.module, ProgramModule):
        return handle
    program = export_program(cpu_copy(handle.module).eval(), example.to("cpu"))
    return ModelHandle(ProgramModule(program, compile_default(handle.precision)), handle.arch, "pt2", handle.precision,
                       handle.info.model_copy())
