"""Model files holding torch.export programs (``.pt2``): int8, bf16 / fp16 and fp32 exports.

A program is a graph of tensor operators plus its weights: it runs without the model's
Python code, and the header (arch, classes, data, metrics, recipe) travels inside the
archive as ``extra/distillcli.json``. The batch dimension is declared dynamic, so one file
serves every batch size. Loading validates the archive first (see ``pt2_check``): a
``.pt2`` file never runs code from the file.

Programs run on the CPU, except that a float program (fp32, bf16, fp16) moves to the GPU of a
CUDA run (``ProgramModule.place_on``); the file always holds the CPU program. An int8 program
is only fast once torch.compile (inductor, with weight freezing) has fused its quantize /
dequantize pairs into int8 kernels: uncompiled it is ~30x slower than fp32. Inductor has those
fusions only once torchao has registered them (``int8_kernels``); a fresh process that merely
loads the file must register them itself, or it compiles every dequantize -> float convolution
as written (2.5-7x slower than int8). So int8 programs compile by default, lazily, once per
input shape at its first call (~10-15 s cold, a few seconds from inductor's on-disk cache);
``DISTILL_COMPILE=0`` / ``1`` turns compilation off / on for programs of every precision.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import torch
from torch import Tensor, nn

from distillcli.atomic_write import atomic_path
from distillcli.errors import CompressionError, ModelFileError
from distillcli.models.weights import check_model_path
from distillcli.modelfile.header import ModelFile, check_format, recorded_model
from distillcli.modelfile.pt2_check import HEADER_NAME, check_archive
from distillcli.models.handle import ArchSpec, ModelHandle
from distillcli.quiet import quiet

COMPILE_ENV = "DISTILL_COMPILE"


def compile_default(precision: str) -> bool:
    setting = os.environ.get(COMPILE_ENV)
    return precision == "int8" if setting is None else setting == "1"


_NOTICE: list[Callable[[str], None]] = []


def set_compile_notice(show: Callable[[str], None] | None) -> None:
    """Where to say that a program is being compiled (the engine passes its progress display)."""
    _NOTICE[:] = [show] if show is not None else []


def compile_notice(text: str) -> None:
    for show in _NOTICE:
        show(text)


class ProgramModule(nn.Module):
    """An exported program as an eval-only module, optionally compiled; on the CPU until placed.

    ``first_call_s`` records the first call per input shape: when ``compiled``, that is the
    compile time, the price of loading a program in a fresh process.
    """

    def __init__(self, program: torch.export.ExportedProgram, compiled: bool = False) -> None:
        super().__init__()
        self.program = program  # on the CPU, as saved
        self.graph_module = program.module()
        self.compiled = compiled
        self.compute_device = torch.device("cpu")  # where it computes, whatever the run's device
        self._compiled_fn: Any = None
        self.first_call_s: dict[str, float] = {}

    @property
    def runtime(self) -> str:
        return "torch.export program" + (", compiled" if self.compiled else "")

    def place_on(self, device: torch.device) -> None:
        """Compute on ``device``: a float program moves there (its weights and the devices its graph
        names); an int8 program stays on the CPU, where its quantized operators have kernels."""
        if device == self.compute_device or holds_int8(self.program):
            return
        from torch.export.passes import move_to_device_pass

        moved = self.program if device.type == "cpu" else move_to_device_pass(copy.deepcopy(self.program), device)
        self.graph_module = moved.module()
        self.compute_device, self._compiled_fn = device, None
        self.first_call_s.clear()

    def train(self, mode: bool = True) -> "ProgramModule":
        """Programs are captured in eval mode; there is nothing to switch."""
        return self

    def _runner(self) -> Any:
        if not self.compiled:
            return self.graph_module
        if self._compiled_fn is None:
            if holds_int8(self.program):
                int8_kernels()
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
            return self.graph_module(x.to(self.compute_device))

    def forward(self, x: Tensor) -> Tensor:
        x = x.to(self.compute_device)
        key = f"{tuple(x.shape)}{'-nhwc' if x.dim() == 4 and not x.is_contiguous() else ''}"
        with torch.no_grad():
            if key in self.first_call_s:
                with warnings.catch_warnings():  # e.g. FlopCounterMode's global hooks around a compiled call
                    warnings.simplefilter("ignore")
                    return self._runner()(x)
            t0 = time.perf_counter()
            if self.compiled:
                compile_notice(f"compiling the program for input {tuple(x.shape)} (once per shape; "
                               "10-60 s on a CPU) ...")
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


def save_program(handle: ModelHandle, header: dict[str, Any], path: Path) -> None:
    """Write the program and the header atomically (the registered saver of .pt2 programs)."""
    if not isinstance(handle.module, ProgramModule):
        raise CompressionError(f"a {handle.format} model must hold an exported program to be saved as .pt2",
                               "save the model before converting it, or export it with `distill export`")
    for node in handle.module.program.graph.nodes:  # tracing provenance: up to half the graph's size, and
        for key in ("stack_trace", "from_node", "torch_fn"):  # the source paths of the machine that wrote it
            node.meta.pop(key, None)
    buffer = io.BytesIO()
    with quiet():
        torch.export.save(handle.module.program, buffer, extra_files={HEADER_NAME: json.dumps(header)})
    with atomic_path(path) as tmp:
        tmp.write_bytes(buffer.getvalue())


def holds_int8(program: torch.export.ExportedProgram) -> bool:
    return any(getattr(n.target, "namespace", None) == "quantized_decomposed" for n in program.graph.nodes)


def int8_kernels() -> None:
    """Register inductor's int8 fusions (dequantize -> conv/linear -> quantize into onednn int8
    kernels, weights prepacked). torchao adds them when its x86 quantizer module is imported:
    the quantizing process always has, a process that only loads a program must do it here."""
    with quiet():
        import torchao.quantization.pt2e.quantizer.x86_inductor_quantizer  # noqa: F401


def register_quantized_ops() -> None:
    """Int8 programs call quantized_decomposed operators; torch defines them in this module."""
    import torch.ao.quantization.fx._decomposed  # noqa: F401


def read_program_header(path: Path) -> dict[str, Any]:
    """The header of a ``.pt2`` model file, the archive validated (see ``pt2_check``)."""
    check_model_path(path)
    header = check_archive(path)
    check_format(header, path)
    if recorded_model(header)[0] != "pt2":
        raise ModelFileError(f"{path} records kind {header.get('kind')!r}, which is not a .pt2 program kind",
                             "expected one of pt2, int8, bf16, fp16")
    return header


def load_program(path: Path) -> ModelFile:
    """Read a ``.pt2`` model file (validated first; see ``pt2_check``)."""
    path = Path(path)
    header = read_program_header(path)
    _, precision, facts = recorded_model(header)
    register_quantized_ops()
    try:
        with quiet():
            program = torch.export.load(path)
            _check_signature(program, header, path)
            module = ProgramModule(program, compile_default(precision))
    except ModelFileError:
        raise
    except Exception as e:
        raise ModelFileError(f"cannot load the program in {path}: {(str(e).splitlines() or [''])[0][:200]}",
                             "it was probably written by another torch version; re-create it with this one") from None
    handle = ModelHandle(module, ArchSpec.from_dict(header["arch"]), "pt2", precision, facts)
    return ModelFile(handle, header["class_names"], tuple(header["input_shape"]), header.get("data", {}),
                     header.get("metrics", {}), header.get("recipe", {}), path)


def _check_signature(program: torch.export.ExportedProgram, header: dict[str, Any], path: Path) -> None:
    """The program must take one float image batch of the recorded shape (any batch size) and
    return one logits tensor per image; anything else fails only when it is evaluated."""
    nodes = {n.name: n for n in program.graph.nodes if n.op in ("placeholder", "output")}
    signature = program.graph_signature
    inputs = [nodes[name].meta.get("val") for name in signature.user_inputs if name in nodes]
    output_node = next((n for n in program.graph.nodes if n.op == "output"), None)
    produced = {getattr(a, "name", None): a for a in (output_node.args[0] if output_node is not None else ())}
    outputs = [getattr(produced.get(name), "meta", {}).get("val") for name in signature.user_outputs]
    shape = list(header["input_shape"])
    want = f"one float32 input of shape [batch, {', '.join(map(str, shape))}] and one output of [batch, " \
           f"{header['arch']['num_classes']}] logits"
    x = inputs[0] if len(inputs) == 1 else None
    y = outputs[0] if len(outputs) == 1 else None
    fits = (isinstance(x, Tensor) and x.dtype == torch.float32 and x.dim() == 4
            and isinstance(x.shape[0], torch.SymInt) and [_static(d) for d in x.shape[1:]] == shape
            and isinstance(y, Tensor) and y.is_floating_point() and y.dim() == 2
            and _static(y.shape[1]) in (header["arch"]["num_classes"], None))
    if not fits:
        got = ", ".join(f"{tuple(v.shape)} {v.dtype}" if isinstance(v, Tensor) else type(v).__name__ for v in inputs)
        raise ModelFileError(f"{path}: the program does not take the images its header describes (expected {want}; "
                             f"its inputs: {got or 'none'})", "export models with `distill export MODEL --format pt2`")


def _static(dim: Any) -> int | None:
    return dim if isinstance(dim, int) else None
