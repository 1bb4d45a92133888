"""Models stored as torch.export programs (``.pt2``): int8, bf16 / fp16 and fp32 exports.

A program is a graph of tensor operators plus its weights: it runs without the model's
Python code, and the header (arch, classes, data, metrics, recipe) travels inside the
archive as ``extra/distillcli.json``. The batch dimension is declared dynamic, so one file
serves every batch size. Loading validates the archive first (see ``pt2_check``): a
``.pt2`` file never runs code from the file.

Programs run on the CPU. An int8 program is only fast once torch.compile (inductor, with
weight freezing) has fused its quantize / dequantize pairs into int8 kernels: uncompiled it
is ~30x slower than fp32. So int8 programs compile by default, lazily, once per input shape
at its first call (~10-15 s cold, a few seconds from inductor's on-disk cache);
``DISTILL_COMPILE=0`` / ``1`` turns compilation off / on for every program kind.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import time
import warnings
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from distillcli.artifact import ModelFile, _check_format, register_kind
from distillcli.compress.export.pt2_check import HEADER_NAME, check_archive
from distillcli.compress.export.quiet import quiet
from distillcli.errors import CompressionError, ModelFileError
from distillcli.fileio import atomic_path
from distillcli.models.classifier import ArchSpec, ModelHandle

PROGRAM_KINDS = ("pt2", "int8", "bf16", "fp16")  # "pt2": an fp32 export
MAX_BATCH = 1 << 16
COMPILE_ENV = "DISTILL_COMPILE"


def compile_default(kind: str) -> bool:
    setting = os.environ.get(COMPILE_ENV)
    return kind == "int8" if setting is None else setting == "1"


class ProgramModule(nn.Module):
    """An exported program as an eval-only module on the CPU, optionally compiled.

    ``first_call_s`` records the first call per input shape: when ``compiled``, that is the
    compile time, the price of loading a program in a fresh process.
    """

    def __init__(self, program: torch.export.ExportedProgram, compiled: bool = False) -> None:
        super().__init__()
        self.program = program
        self.graph_module = program.module()
        self.compiled = compiled
        self._compiled_fn: Any = None
        self.first_call_s: dict[str, float] = {}

    def train(self, mode: bool = True) -> "ProgramModule":
        """Programs are captured in eval mode; there is nothing to switch."""
        return self

    def _runner(self) -> Any:
        if not self.compiled:
            return self.graph_module
        if self._compiled_fn is None:
            self._compiled_fn = torch.compile(self.graph_module, dynamic=False, recompile_limit=16)
        return self._compiled_fn

    def _compile_settings(self) -> Any:
        """Weight freezing (constant-folds the int8 weight packing): a global inductor setting,
        so it is set around the calls that compile (``options=`` fails on onednn packing ops)."""
        if not self.compiled:
            return contextlib.nullcontext()
        from torch._inductor import config

        return config.patch(freezing=True)

    def uncompiled(self, x: Tensor) -> Tensor:
        """The program run as captured, without compiling (exact; slow for int8)."""
        with torch.no_grad():
            return self.graph_module(x.to("cpu"))

    def forward(self, x: Tensor) -> Tensor:
        x = x.to("cpu")
        key = f"{tuple(x.shape)}{'-nhwc' if x.dim() == 4 and not x.is_contiguous() else ''}"
        with torch.no_grad():
            if key in self.first_call_s:
                with warnings.catch_warnings():  # e.g. FlopCounterMode's global hooks around a compiled call
                    warnings.simplefilter("ignore")
                    return self._runner()(x)
            t0 = time.perf_counter()
            try:
                with quiet(), self._compile_settings():
                    out = self._runner()(x)
            except Exception as e:
                if not self.compiled:
                    raise
                raise CompressionError(f"torch.compile failed on this program: {str(e).splitlines()[0][:200]}",
                                       f"run it uncompiled: set {COMPILE_ENV}=0 (or compile: false in the "
                                       "quantize step); rerun with DISTILL_DEBUG=1 for the trace") from None
            self.first_call_s[key] = time.perf_counter() - t0
            return out


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


def export_program(module: nn.Module, example: Tensor) -> torch.export.ExportedProgram:
    """Capture ``module`` (in its current train/eval mode) with a dynamic batch dimension; a
    failure names the layer torch.export cannot capture."""
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    example = torch.cat([example[:1], example[:1]])  # two images: kept in the file as the sample input
    try:
        with quiet():
            return torch.export.export(module, (example,), dynamic_shapes=({0: batch},))
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


def save_program(handle: ModelHandle, header: dict[str, Any], path: Path) -> None:
    """Write the program and the header atomically (registered saver of every program kind)."""
    if not isinstance(handle.module, ProgramModule):
        raise CompressionError(f"a {handle.kind} model must hold an exported program to be saved as .pt2",
                               "save the model before converting it, or export it with `distill export`")
    for node in handle.module.program.graph.nodes:  # tracing provenance: up to half the graph's size, and
        for key in ("stack_trace", "from_node", "torch_fn"):  # the source paths of the machine that wrote it
            node.meta.pop(key, None)
    buffer = io.BytesIO()
    with quiet():
        torch.export.save(handle.module.program, buffer, extra_files={HEADER_NAME: json.dumps(header)})
    with atomic_path(path) as tmp:
        tmp.write_bytes(buffer.getvalue())


def register_quantized_ops() -> None:
    """Int8 programs call quantized_decomposed operators; torch defines them in this module."""
    import torch.ao.quantization.fx._decomposed  # noqa: F401


def load_program(path: Path) -> ModelFile:
    """Read a ``.pt2`` model file (validated first; see ``pt2_check``)."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"model file not found: {path}", "check the path (runs write models to runs/<run>/models/)")
    header = check_archive(path)
    _check_format(header, path)
    kind = header.get("kind")
    if kind not in PROGRAM_KINDS:
        raise ModelFileError(f"{path} records kind {kind!r}, which is not a .pt2 program kind",
                             f"expected one of {', '.join(PROGRAM_KINDS)}")
    register_quantized_ops()
    try:
        with quiet():
            program = torch.export.load(path)
    except Exception as e:
        raise ModelFileError(f"cannot load the program in {path}: {str(e).splitlines()[0][:200]}",
                             "it was probably written by another torch version; re-create it with this one") from None
    handle = ModelHandle(ProgramModule(program, compile_default(kind)), ArchSpec.from_dict(header["arch"]), kind,
                         header.get("info", {}))
    return ModelFile(handle, header["class_names"], tuple(header["input_shape"]), header.get("data", {}),
                     header.get("metrics", {}), header.get("recipe", {}), path)


def as_program(handle: ModelHandle, example: Tensor) -> ModelHandle:
    """An fp32 eager model as a ``pt2`` program; programs pass through unchanged."""
    if isinstance(handle.module, ProgramModule):
        return handle
    program = export_program(cpu_copy(handle.module).eval(), example.to("cpu"))
    return ModelHandle(ProgramModule(program, compile_default("pt2")), handle.arch, "pt2", dict(handle.info))


for _kind in PROGRAM_KINDS:
    register_kind(_kind, ".pt2", save_program, load_program)
