"""Model-file formats by name (torch-free): suffix, the model format each stores, and where its
saver, loader and header reader live (imported on first use, so reading an eager file never
imports torch.export or onnx). Loading never runs code from a file, except an ``.aoti`` package
the caller allowed (``runs_native_code``)."""

from __future__ import annotations

from dataclasses import dataclass

from distillcli.registry import Entry, Registry


@dataclass(frozen=True, kw_only=True)
class FormatEntry(Entry):
    """``target`` is the loader, ``path -> ModelFile``; ``save`` the saver, ``(handle, header, path)``."""

    suffix: str
    save: str
    model_format: str  # the ModelHandle.format written in this format
    header: str | None = None  # "module:function" reading the header alone; None: a full load
    runtime: str = "PyTorch"  # what runs the file
    exportable: bool = False  # `export --format` writes it
    runs_native_code: bool = False  # loads compiled machine code: only when the caller allows it


_M = "distillcli.modelfile."

FORMATS: Registry[FormatEntry] = Registry("model format", FormatEntry, [
    FormatEntry(name="pt", target=_M + "eager:load_eager", save=_M + "eager:save_eager", suffix=".pt",
                model_format="eager", summary="header + structure + state_dict (torch.load with weights_only=True)"),
    FormatEntry(name="pt2", target=_M + "program:load_program", save=_M + "program:save_program", suffix=".pt2",
                model_format="pt2", header=_M + "program:read_program_header",
                runtime="torch.export", exportable=True,
                summary="a torch.export program (fp32, int8, bf16 or fp16), validated before loading"),
    FormatEntry(name="onnx", target=_M + "onnx:load_onnx", save=_M + "onnx:save_onnx", suffix=".onnx",
                model_format="onnx", runtime="onnxruntime", exportable=True,
                summary="an ONNX graph run by onnxruntime"),
    FormatEntry(name="aoti", target=_M + "native:load_native", save=_M + "native:save_native", suffix=".aoti",
                model_format="aoti", header=_M + "native:read_native_header", runtime="AOTInductor", exportable=True,
                runs_native_code=True, summary="an AOTInductor package: machine code, loaded only with --allow-native"),
], group="distillcli.formats")


def format_for(model_format: str) -> FormatEntry:
    """The file format a model of ``model_format`` (``ModelHandle.format``) is saved in (.pt if none claims it)."""
    return next((f for f in FORMATS.entries() if f.model_format == model_format), FORMATS.get("pt"))


def format_of_path(path_suffix: str) -> FormatEntry:
    """The format of a file by its suffix (``.pt`` for anything else: its header says what it is)."""
    return next((f for f in FORMATS.entries() if f.suffix == path_suffix), FORMATS.get("pt"))


def exportable() -> list[str]:
    return [f.name for f in FORMATS.entries() if f.exportable]


def attr(ref: str) -> object:
    return Entry(name=ref, target=ref).load()
