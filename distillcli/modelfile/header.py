"""What every model file records besides its weights, whatever its format.

    format           "distillcli.model"
    format_version   1
    kind             "eager" | "pt2" | "int8" | "bf16" | "fp16" | "onnx"
    arch             ArchSpec as a dict (registry name, kwargs, classes, channels, mean/std)
    class_names, input_shape, data (the data options it was trained on)
    info             kind-specific facts (sparsity, quantization scheme ...)
    metrics          the measurements taken when it was written
    recipe           the resolved recipe of the run that made it
    versions, created
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from distillcli import __version__
from distillcli.errors import ModelFileError
from distillcli.models.handle import ModelHandle

FORMAT = "distillcli.model"
FORMAT_VERSION = 1


@dataclass
class ModelFile:
    """A loaded model file: the model plus what was recorded with it."""

    handle: ModelHandle
    class_names: list[str]
    input_shape: tuple[int, int, int]
    data: dict[str, Any]
    metrics: dict[str, Any] = field(default_factory=dict)
    recipe: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None


def versions() -> dict[str, str]:
    import torchvision

    return {"distillcli": __version__, "torch": str(torch.__version__), "torchvision": str(torchvision.__version__)}


def file_header(handle: ModelHandle, *, class_names: list[str], input_shape: tuple[int, int, int],
                data: dict[str, Any], metrics: dict[str, Any] | None = None,
                recipe: dict[str, Any] | None = None) -> dict[str, Any]:
    """Everything recorded with a model except its weights."""
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "kind": handle.kind,
        "arch": handle.arch.to_dict(),
        "class_names": list(class_names),
        "input_shape": list(input_shape),
        "data": data,
        "info": handle.info,
        "metrics": metrics or {},
        "recipe": recipe or {},
        "versions": versions(),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def check_format(payload: Any, path: Path) -> None:
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ModelFileError(
            f"{path} is not a distillcli model file",
            "a plain checkpoint can be used as a teacher: teacher: {arch: NAME, checkpoint: PATH, strip_prefix: 'module.'}",
        )
    if payload.get("format_version", 0) > FORMAT_VERSION:
        raise ModelFileError(
            f"{path} was written by a newer distillcli (format {payload['format_version']})",
            "upgrade distillcli (pip install -U distillcli)",
        )


def is_model_payload(payload: Any) -> bool:
    """True for the contents of a distillcli model file (as opposed to a plain checkpoint)."""
    return isinstance(payload, dict) and payload.get("format") == FORMAT
