"""Model files: save and load a model of any kind, safely.

Each format lives in its own module and is listed here, explicitly, once:
    eager  ``.pt``    header + structure + state_dict (torch.load with weights_only=True)
    pt2 / int8 / bf16 / fp16   ``.pt2``   a torch.export program (validated before loading)
    onnx   ``.onnx``  an ONNX graph run by onnxruntime
    aoti   ``.aoti``  an AOTInductor package: machine code, loaded only when the caller opts in
Loading never runs code from the file, except an ``.aoti`` package the caller allowed. Foreign checkpoints (a bare state_dict) load
through ``modelfile.foreign``.
"""

from __future__ import annotations

from importlib import import_module
from pathlib import Path
from typing import Any, Callable

from distillcli.modelfile.header import FORMAT, FORMAT_VERSION, ModelFile, check_format, file_header, versions
from distillcli.models.handle import ModelHandle

Saver = Callable[[ModelHandle, dict[str, Any], Path], None]
Loader = Callable[[Path], ModelFile]

# kind -> (suffix, module, saver name, loader name); modules are imported when first used,
# so that reading an eager file never imports torch.export or onnx.
_KINDS: dict[str, tuple[str, str, str, str]] = {
    "eager": (".pt", "eager", "save_eager", "load_eager"),
    **{kind: (".pt2", "program", "save_program", "load_program") for kind in ("pt2", "int8", "bf16", "fp16")},
    "onnx": (".onnx", "onnx", "save_onnx", "load_onnx"),
    "aoti": (".aoti", "native", "save_native", "load_native"),
}


def _format(kind: str) -> tuple[str, Saver, Loader]:
    suffix, module, save, load = _KINDS[kind]
    mod = import_module(f"distillcli.modelfile.{module}")
    return suffix, getattr(mod, save), getattr(mod, load)


def model_suffix(handle: ModelHandle) -> str:
    return _KINDS[handle.kind][0] if handle.kind in _KINDS else ".pt"


def kind_suffixes() -> set[str]:
    """File suffixes of the non-eager kinds (.pt2, .onnx)."""
    return {suffix for kind, (suffix, *_) in _KINDS.items() if kind != "eager"}


def save_model(path: str | Path, handle: ModelHandle, header: dict[str, Any]) -> Path:
    """Write the model atomically; returns the path (its suffix set by the model's kind)."""
    suffix, save, _ = _format(handle.kind if handle.kind in _KINDS else "eager")
    path = Path(path).with_suffix(suffix)
    save(handle, header, path)
    return path


def _loader(path: Path) -> Loader:
    kind = next((k for k, (suffix, *_) in _KINDS.items() if k != "eager" and path.suffix == suffix), "eager")
    return _format(kind)[2]


def load_model(path: str | Path) -> ModelFile:
    """Rebuild a model from its file, in eval mode on the CPU."""
    path = Path(path)
    return _loader(path)(path)


def read_header(path: str | Path) -> dict[str, Any]:
    """The recorded fields of a model file of any kind."""
    path = Path(path)
    if path.suffix == ".pt2":  # the header alone, validated, without loading the program
        from distillcli.modelfile.program import read_program_header

        return read_program_header(path)
    if path.suffix == ".aoti":  # without loading its library
        from distillcli.modelfile.native import read_native_header

        return read_native_header(path)
    if path.suffix in kind_suffixes():
        mf = load_model(path)
        return {"kind": mf.handle.kind, "metrics": mf.metrics, "data": mf.data}
    from distillcli.modelfile.eager import safe_torch_load

    payload = safe_torch_load(path)
    check_format(payload, path)
    return payload


def file_size(path: str | Path) -> int:
    """Bytes of a model file plus its external-weights companion (``.data``), if any."""
    path = Path(path)
    extra = path.with_name(path.name + ".data")
    return path.stat().st_size + (extra.stat().st_size if extra.exists() else 0)


__all__ = ["FORMAT", "FORMAT_VERSION", "ModelFile", "check_format", "file_header", "file_size", "kind_suffixes",
           "load_model", "model_suffix", "read_header", "save_model", "versions"]
