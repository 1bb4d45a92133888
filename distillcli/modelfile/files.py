"""Save and load a model of any kind, safely, through its format's entry (``modelfile.formats``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, cast

from distillcli.modelfile.formats import attr, format_for, format_of_path
from distillcli.modelfile.header import ModelFile, check_format, header_fields
from distillcli.models.handle import ModelHandle


def model_suffix(handle: ModelHandle) -> str:
    return format_for(handle.format).suffix


def kind_suffixes() -> set[str]:
    """File suffixes of the formats other than the eager ``.pt``."""
    from distillcli.modelfile.formats import FORMATS

    return {f.suffix for f in FORMATS.entries() if f.name != "pt"}


def save_model(path: str | Path, handle: ModelHandle, header: dict[str, Any]) -> Path:
    """Write the model atomically; returns the path (its suffix set by the model's format)."""
    fmt = format_for(handle.format)
    path = Path(path).with_suffix(fmt.suffix)
    cast(Callable[[ModelHandle, dict[str, Any], Path], None], attr(fmt.save))(handle, header, path)
    return path


def load_model(path: str | Path) -> ModelFile:
    """Rebuild a model from its file, in eval mode on the CPU."""
    path = Path(path)
    return cast(Callable[[Path], ModelFile], format_of_path(path.suffix).load())(path)


def read_header(path: str | Path) -> dict[str, Any]:
    """The recorded fields of a model file of any kind."""
    path = Path(path)
    fmt = format_of_path(path.suffix)
    if fmt.header is not None:  # the header alone, validated, without loading the program or library
        return cast(Callable[[Path], dict[str, Any]], attr(fmt.header))(path)
    if fmt.name != "pt":
        mf = load_model(path)
        handle = mf.handle
        return {**header_fields(handle.format, handle.precision, handle.info), "metrics": mf.metrics, "data": mf.data}
    from distillcli.models.weights import safe_torch_load

    payload = safe_torch_load(path)
    check_format(payload, path)
    return payload


def file_size(path: str | Path) -> int:
    """Bytes of a model file plus its external-weights companion (``.data``), if any."""
    path = Path(path)
    extra = path.with_name(path.name + ".data")
    return path.stat().st_size + (extra.stat().st_size if extra.exists() else 0)
