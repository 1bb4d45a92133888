"""Model files holding machine code: AOTInductor packages (``.aoti``), an opt-in deployment format.

A ``.pt2`` program is compiled by every process that loads it (10-60 s on a CPU, and inductor
cannot cache a frozen int8 graph: its prepacked weights do not pickle). An AOTInductor package
is that compilation done once, ahead of time: a shared library with the weights and kernels,
loaded in a fraction of a second and run without Python overhead.

The trade-off is safety: loading the package runs the machine code inside it, so a hostile
file can do anything. distillcli therefore reads the header without loading the library and
refuses to load the library unless the caller opts in (``distill eval --allow-native``,
``DISTILL_ALLOW_NATIVE=1``, or ``allow_native()`` in code). The library is built for the CPU
that compiled it (its instruction set is in the header): build it on, or for, the machine that
runs it. Portable alternatives: ``.pt2`` (int8 included) and ONNX.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import zipfile
from pathlib import Path
from typing import Any, Iterator

import torch
from torch import Tensor

from distillcli.atomic_write import atomic_path
from distillcli.errors import CompressionError, ModelFileError
from distillcli.models.weights import check_model_path
from distillcli.modelfile.header import ModelFile, check_format, header_fields, recorded_model
from distillcli.modelfile.program import ProgramModule, holds_int8, int8_kernels
from distillcli.models.handle import ArchSpec, ModelHandle
from distillcli.quiet import quiet

ALLOW_ENV = "DISTILL_ALLOW_NATIVE"
HEADER_MEMBER = "extra/distillcli.json"
_allowed: list[bool] = []


@contextlib.contextmanager
def allow_native() -> Iterator[None]:
    """Within this block, native packages load (for files this process has just written)."""
    _allowed.append(True)
    try:
        yield
    finally:
        _allowed.pop()


def native_allowed() -> bool:
    return bool(_allowed) or os.environ.get(ALLOW_ENV) == "1"


class NativeRunner:
    """Calls a loaded package like a model: float32 NCHW images in, logits out (on the CPU).

    The compiled code reads its input in the memory layout it was compiled for and does not check
    it (a channels_last program fed plain NCHW memory computes garbage), so every batch is laid
    out as recorded. Not an nn.Module: it has no parameters to count (the header keeps the source's)."""

    compute_device, runtime = torch.device("cpu"), "AOTInductor package"

    def __init__(self, runner: Any, path: Path, layout: str) -> None:
        self.runner, self.path = runner, path
        self.memory_format = torch.channels_last if layout == "channels_last" else torch.contiguous_format

    def __call__(self, images: Tensor) -> Tensor:
        return self.runner(images.to("cpu", torch.float32).contiguous(memory_format=self.memory_format))


def input_layout(program: torch.export.ExportedProgram) -> str:
    """The memory layout of the program's image input when it was captured."""
    inputs = set(program.graph_signature.user_inputs)
    node = next(n for n in program.graph.nodes if n.op == "placeholder" and n.name in inputs)
    val = node.meta.get("val")
    nhwc = isinstance(val, Tensor) and val.dim() == 4 and val.stride()[1] == 1 and val.shape[1] != 1
    return "channels_last" if nhwc else "contiguous"


def save_native(handle: ModelHandle, header: dict[str, Any], path: Path) -> None:
    """Compile the handle's program with AOTInductor (int8 fusions and weight freezing, as a
    compiled ``.pt2`` gets them) and write the package with the header, atomically."""
    module = handle.module
    if not isinstance(module, ProgramModule):
        raise CompressionError("an AOTInductor package is compiled from an exported program",
                               "export the model with `distill export MODEL --format aoti`")
    if holds_int8(module.program):
        int8_kernels()
    from torch._inductor import config

    buffer = io.BytesIO()
    try:
        with quiet(), torch.no_grad(), config.patch(freezing=True):
            torch._inductor.aoti_compile_and_package(module.program, package_path=buffer)
    except Exception as e:
        raise CompressionError(f"AOTInductor could not compile the model: {str(e).strip().splitlines()[0][:200]}",
                               "use --format pt2 (compiled where it is loaded) or onnx; a C++ compiler is needed "
                               "for this format") from None
    buffer.seek(0)
    with zipfile.ZipFile(buffer) as source, atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w") as target:
        root = source.namelist()[0].split("/", 1)[0]
        for item in source.infolist():
            target.writestr(item, source.read(item))
        facts = handle.info.model_copy(update={"input_layout": input_layout(module.program)})
        target.writestr(f"{root}/{HEADER_MEMBER}",
                        json.dumps({**header, **header_fields("aoti", handle.precision, facts)}))


def read_native_header(path: Path) -> dict[str, Any]:
    """The header of a package, read from the archive without loading its library."""
    check_model_path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            member = next((n for n in archive.namelist() if n.split("/", 1)[-1] == HEADER_MEMBER), None)
            if member is None:
                raise ModelFileError(f"{path} is not a distillcli AOTInductor package (no {HEADER_MEMBER})",
                                     "only .aoti files written by `distill export --format aoti` are loaded")
            header = json.loads(archive.read(member))
    except (zipfile.BadZipFile, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ModelFileError(f"{path} is corrupt or not an AOTInductor package ({e})",
                             "re-create it with `distill export MODEL --format aoti`") from None
    check_format(header, path)
    if recorded_model(header)[0] != "aoti":
        raise ModelFileError(f"{path} records kind {header.get('kind')!r}, not an AOTInductor package",
                             "give the file the suffix its kind uses (.pt, .pt2, .onnx)")
    return header


def load_native(path: Path) -> ModelFile:
    """Load a package (only where allowed: it runs the machine code inside the file)."""
    path = Path(path)
    header = read_native_header(path)
    if not native_allowed():
        raise ModelFileError(f"{path} is an AOTInductor package: loading it runs the machine code inside it, "
                             "so it is not loaded by default",
                             f"if you built it or trust its source: add --allow-native (or set {ALLOW_ENV}=1); "
                             "otherwise use the portable .pt2 or .onnx file")
    _, precision, facts = recorded_model(header)
    try:
        with quiet():
            if precision == "int8":
                from distillcli.modelfile.program import register_quantized_ops

                register_quantized_ops()
            runner = torch._inductor.aoti_load_package(str(path))
    except Exception as e:
        raise ModelFileError(f"cannot load the AOTInductor package {path}: {str(e).strip().splitlines()[0][:200]}",
                             "it was built for another machine or torch version; rebuild it here with "
                             "`distill export MODEL --format aoti`") from None
    handle = ModelHandle(NativeRunner(runner, path, facts.input_layout or "contiguous"),  # type: ignore[arg-type]
                         ArchSpec.from_dict(header["arch"]), "aoti", precision, facts)
    return ModelFile(handle, header["class_names"], tuple(header["input_shape"]), header.get("data", {}),
                     header.get("metrics", {}), header.get("recipe", {}), path)
