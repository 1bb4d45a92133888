"""What every model file records besides its weights, whatever its format.

    format           "distillcli.model"
    format_version   1
    kind             the model format ("eager", "pt2", "onnx", "aoti"), except that a .pt2 program in
                     int8, bf16 or fp16 is named by its precision (see ``header_fields``)
    arch             ArchSpec as a dict (registry name, kwargs, classes, channels, mean/std)
    class_names, input_shape, data (the data options it was trained on)
    info             ModelFacts (pruning, sharing, quantization ...); .onnx and .aoti files also
                     their precision
    metrics          the measurements taken when it was written
    recipe           the resolved recipe of the run that made it
    versions, created
    machine          the machine that wrote it (distillcli.machine; absent in older files)
"""

from __future__ import annotations

import datetime as _dt
import math
import reprlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args

import torch
from pydantic import TypeAdapter, ValidationError

from distillcli import __version__
from distillcli.errors import ModelFileError
from distillcli.facts import ModelFacts, Precision
from distillcli.machine import Machine, this_machine
from distillcli.models.handle import ModelHandle

FORMAT = "distillcli.model"
FORMAT_VERSION = 1
_NAMED_BY_PRECISION = tuple(p for p in get_args(Precision) if p != "fp32")  # kinds of a .pt2 program that is not fp32
_PRECISION: TypeAdapter[Precision] = TypeAdapter(Precision)


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
        **header_fields(handle.format, handle.precision, handle.info),
        "arch": handle.arch.to_dict(),
        "class_names": list(class_names),
        "input_shape": list(input_shape),
        "data": data,
        "metrics": metrics or {},
        "recipe": recipe or {},
        "versions": versions(),
        "machine": this_machine().to_dict(),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def header_fields(model_format: str, precision: str, facts: ModelFacts) -> dict[str, Any]:
    """The header's ``kind`` and ``info`` of a model (format version 1 has no field for either alone)."""
    info = facts.model_dump(mode="json", exclude_none=True)
    if model_format not in ("eager", "pt2"):
        return {"kind": model_format, "info": {**info, "precision": precision}}
    return {"kind": precision if model_format == "pt2" and precision != "fp32" else model_format, "info": info}


def recorded_model(header: dict[str, Any]) -> tuple[str, Precision, ModelFacts]:
    """The model format, precision and facts a header records (see ``header_fields``)."""
    kind, info = header.get("kind", "eager"), header.get("info", {})
    facts = ModelFacts.model_validate(info)
    if kind in _NAMED_BY_PRECISION:
        return "pt2", kind, facts
    return kind, _PRECISION.validate_python(info.get("precision", "fp32")), facts


def check_format(payload: Any, path: Path) -> None:
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ModelFileError(
            f"{path} is not a distillcli model file",
            "a plain checkpoint can be used as a teacher: teacher: {arch: NAME, checkpoint: PATH, strip_prefix: 'module.'}",
        )
    version = payload.get("format_version")
    if not _int_in(version, 1, 1 << 31):
        raise _bad_field(path, "format_version", "a positive integer", version)
    if version > FORMAT_VERSION:
        raise ModelFileError(
            f"{path} was written by a newer distillcli (format {payload['format_version']})",
            "upgrade distillcli (pip install -U distillcli)",
        )
    validate_header(payload, path)


def is_model_payload(payload: Any) -> bool:
    """True for the contents of a distillcli model file (as opposed to a plain checkpoint)."""
    return isinstance(payload, dict) and payload.get("format") == FORMAT


# ---------------------------------------------------------------- header validation
MAX_CLASSES = 100_000
MAX_CHANNELS = 64
MAX_SIDE = 4096  # input height and width
MAX_ARG = 4096  # numbers among an architecture's arguments (width, depth ...)
_ARCH_FIELDS = {"name", "num_classes", "in_channels", "mean", "std", "kwargs", "keep_blocks"}
DAMAGED_HINT = "the file is damaged or was not written by distillcli; re-create it from the run or command that made it"


def validate_header(payload: dict[str, Any], path: Path) -> None:
    """Check the type and range of every recorded field, so that a damaged or crafted file is
    refused here, naming the field, instead of failing later inside model building."""
    kind = payload.get("kind", "eager")
    if not (isinstance(kind, str) and 0 < len(kind) <= 32):
        raise _bad_field(path, "kind", "a model kind (eager, pt2, int8, bf16, fp16, onnx)", kind)
    arch = payload.get("arch")
    _check_arch(arch, path)
    names = payload.get("class_names")
    if not (isinstance(names, list) and len(names) == arch["num_classes"]
            and all(isinstance(n, str) and len(n) <= 1000 for n in names)):
        raise _bad_field(path, "class_names", f"a list of {arch['num_classes']} names (arch.num_classes)", names)
    shape = payload.get("input_shape")
    if not (isinstance(shape, (list, tuple)) and len(shape) == 3 and shape[0] == arch["in_channels"]
            and all(_int_in(n, 1, MAX_SIDE) for n in shape[1:])):
        raise _bad_field(path, "input_shape", f"[channels, height, width] with {arch['in_channels']} channels "
                                              f"(arch.in_channels) and sides of 1 to {MAX_SIDE}", shape)
    for key in ("data", "info", "metrics", "recipe", "versions"):
        value = payload.get(key, {})
        if not (isinstance(value, dict) and all(isinstance(k, str) for k in value)):
            raise _bad_field(path, key, "a mapping with text keys", value)
    try:
        recorded_model(payload)
    except ValidationError as e:
        error = e.errors()[0]
        where = ".".join(map(str, error["loc"])) or "precision"
        raise _bad_field(path, "info", f"the model's facts ({where}: {error['msg']})", payload.get("info")) from None
    if not isinstance(payload.get("created", ""), str):
        raise _bad_field(path, "created", "a date as text", payload.get("created"))
    if payload.get("machine") is not None:
        try:
            Machine.from_dict(payload["machine"])
        except ValueError as e:
            raise _bad_field(path, "machine", f"the machine that wrote it ({e})", payload["machine"]) from None


def _check_arch(arch: Any, path: Path) -> None:
    if not isinstance(arch, dict):
        raise _bad_field(path, "arch", "a mapping (name, num_classes, in_channels, mean, std ...)", arch)
    missing = sorted(_ARCH_FIELDS - {"kwargs", "keep_blocks"} - set(arch))
    unknown = sorted(str(k) for k in arch if k not in _ARCH_FIELDS)
    if missing or unknown:
        what = (f"missing {', '.join(missing)}" if missing else "") + ("; " if missing and unknown else "") + \
               (f"unknown {', '.join(unknown)[:200]}" if unknown else "")
        raise ModelFileError(f"{path}: header field 'arch' is malformed ({what})", DAMAGED_HINT)
    if not (isinstance(arch["name"], str) and 0 < len(arch["name"]) <= 4096):
        raise _bad_field(path, "arch.name", "a model name", arch["name"])
    if not _int_in(arch["num_classes"], 1, MAX_CLASSES):
        raise _bad_field(path, "arch.num_classes", f"an integer from 1 to {MAX_CLASSES}", arch["num_classes"])
    channels = arch["in_channels"]
    if not _int_in(channels, 1, MAX_CHANNELS):
        raise _bad_field(path, "arch.in_channels", f"an integer from 1 to {MAX_CHANNELS}", channels)
    for key in ("mean", "std"):
        values = arch[key]
        if not (isinstance(values, list) and len(values) in (1, channels) and all(_finite(v) for v in values)
                and (key == "mean" or all(v > 0 for v in values))):
            need = "positive numbers" if key == "std" else "numbers"
            raise _bad_field(path, f"arch.{key}", f"a list of {channels} {need} (one per channel)", values)
    kwargs = arch.get("kwargs", {})
    if not (isinstance(kwargs, dict) and all(isinstance(k, str) for k in kwargs)):
        raise _bad_field(path, "arch.kwargs", "a mapping of architecture options", kwargs)
    for key, value in kwargs.items():
        if not _plain_arg(value):
            raise _bad_field(path, f"arch.kwargs.{key[:60]}", f"a plain option (a number up to {MAX_ARG}, text, "
                                                              "true/false or a short list of those)", value)
    blocks = arch.get("keep_blocks")
    if blocks is not None and not _int_in(blocks, 1, MAX_ARG):
        raise _bad_field(path, "arch.keep_blocks", f"empty or an integer from 1 to {MAX_ARG}", blocks)


def _plain_arg(value: Any, nested: bool = False) -> bool:
    if value is None or isinstance(value, bool):
        return True
    if isinstance(value, (int, float)):
        return _finite(value) and abs(value) <= MAX_ARG
    if isinstance(value, str):
        return len(value) <= 200
    if isinstance(value, (list, tuple)) and not nested:
        return len(value) <= 64 and all(_plain_arg(v, nested=True) for v in value)
    return False


def _int_in(value: Any, lo: int, hi: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and lo <= value <= hi


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _bad_field(path: Path, field: str, need: str, value: Any) -> ModelFileError:
    text = reprlib.repr(value) if not isinstance(value, torch.Tensor) else f"a tensor of shape {tuple(value.shape)}"
    text = text if len(text) <= 80 else text[:77] + "..."
    got = "it is missing" if value is None else f"got {text}"
    return ModelFileError(f"{path}: header field {field!r} must be {need}; {got}", DAMAGED_HINT)
