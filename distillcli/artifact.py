"""The model file: one ``.pt`` per model, loadable with ``torch.load(weights_only=True)``.

Layout (format_version 1), plain containers, strings, numbers and tensors only:
    format           "distillcli.model"
    format_version   1
    kind             "eager" (other kinds are added by the compression layer)
    arch             ArchSpec as a dict (registry name, kwargs, classes, channels, mean/std)
    structure        per-layer constructor args (pruned channel counts), see models.structure
    state_dict       tensors
    class_names, input_shape, data (the data options it was trained on)
    info             kind-specific facts (sparsity, quantization scheme ...)
    metrics          the measurements taken when it was written
    recipe           the resolved recipe of the run that made it
    versions, created
Foreign checkpoints (a bare state_dict or {'state_dict': ...}) load through
``load_foreign_weights`` with prefix stripping and key renaming.
"""

from __future__ import annotations

import datetime as _dt
import pickle
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from distillcli import __version__
from distillcli.errors import ModelFileError
from distillcli.fileio import atomic_path
from distillcli.models.build import backbone, build_model
from distillcli.models.classifier import ArchSpec, ModelHandle
from distillcli.models.structure import apply_structure, capture_structure

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


# kind -> (save, load). The compression layer registers kinds whose module is not a
# plain eager model (e.g. an exported int8 program); see register_kind.
Saver = Callable[[ModelHandle, dict[str, Any], Path], None]
Loader = Callable[[Path], ModelFile]
_KINDS: dict[str, tuple[str, Saver, Loader]] = {}


def register_kind(kind: str, suffix: str, save: Saver, load: Loader) -> None:
    """Teach save_model/load_model a new model kind stored in files ending in ``suffix``."""
    _KINDS[kind] = (suffix, save, load)


def kind_suffixes() -> set[str]:
    """File suffixes of the registered non-eager kinds (.pt2, .onnx ...)."""
    return {suffix for suffix, _, _ in _KINDS.values()}


def versions() -> dict[str, str]:
    import torchvision

    return {"distillcli": __version__, "torch": str(torch.__version__), "torchvision": str(torchvision.__version__)}


def model_suffix(handle: ModelHandle) -> str:
    return _KINDS[handle.kind][0] if handle.kind in _KINDS else ".pt"


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


def save_model(path: str | Path, handle: ModelHandle, header: dict[str, Any]) -> Path:
    """Write the model atomically; returns the path (suffix set by the model's kind)."""
    path = Path(path)
    if handle.kind in _KINDS:
        suffix, save, _ = _KINDS[handle.kind]
        path = path.with_suffix(suffix)
        save(handle, header, path)
        return path
    payload = dict(header)
    payload["structure"] = capture_structure(handle.module)
    payload["state_dict"] = {k: v.detach().cpu().contiguous() for k, v in handle.module.state_dict().items()}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


def safe_torch_load(path: str | Path) -> Any:
    """torch.load that never runs code from the file and explains every failure."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"model file not found: {path}", "check the path (runs write models to runs/<run>/models/)")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(e))
        what = f"it would import {found.group(1)}" if found else "it contains objects other than tensors and plain data"
        raise ModelFileError(
            f"refused to load {path}: {what}, and loading it could run code from the file",
            "only load files from a source you trust; re-save the weights as a plain state_dict "
            "(torch.save(model.state_dict(), path)) and load that instead",
        ) from None
    except (RuntimeError, zipfile.BadZipFile, EOFError, OSError, ValueError) as e:
        raise ModelFileError(
            f"cannot read {path}: the file is corrupt or not a PyTorch file ({str(e).splitlines()[0][:160]})",
            "re-create or re-download the file; a partial copy is the usual cause",
        ) from None


def read_header(path: str | Path) -> dict[str, Any]:
    """The recorded fields of a model file of any kind (weights are not built)."""
    path = Path(path)
    for kind, (suffix, _, load) in _KINDS.items():
        if path.suffix == suffix:
            mf = load(path)
            return {"kind": kind, "metrics": mf.metrics, "data": mf.data}
    payload = safe_torch_load(path)
    _check_format(payload, path)
    return payload


def _check_format(payload: Any, path: Path) -> None:
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


def load_model(path: str | Path) -> ModelFile:
    """Rebuild a model from its file, in eval mode on the CPU."""
    path = Path(path)
    for suffix, _, load in _KINDS.values():
        if path.suffix == suffix:
            return load(path)
    return model_from_payload(safe_torch_load(path), path)


def is_model_payload(payload: Any) -> bool:
    """True for the contents of a distillcli model file (as opposed to a plain checkpoint)."""
    return isinstance(payload, dict) and payload.get("format") == FORMAT


def model_from_payload(payload: Any, path: Path) -> ModelFile:
    """Rebuild a model from the already-read contents of a ``.pt`` model file."""
    _check_format(payload, path)
    arch = ArchSpec.from_dict(payload["arch"])
    model = apply_structure(build_model(arch), payload.get("structure", {}))
    _load_state(model, payload["state_dict"], str(path))
    model.eval()
    handle = ModelHandle(model, arch, payload.get("kind", "eager"), payload.get("info", {}))
    return ModelFile(handle, payload["class_names"], tuple(payload["input_shape"]), payload.get("data", {}),
                     payload.get("metrics", {}), payload.get("recipe", {}), path)


def _fillable(key: str, model: nn.Module) -> bool:
    """Keys a foreign checkpoint may lack because they are derived, not learned."""
    if key.endswith("num_batches_tracked"):
        return True
    owner, _, buffer = key.rpartition(".")
    try:
        module = model.get_submodule(owner)
    except AttributeError:
        return False
    return buffer in getattr(module, "derived_buffers", ())


def _describe(keys: list[str], limit: int = 8) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f" ... (+{len(keys) - limit} more)" if len(keys) > limit else "")


def _load_state(model: nn.Module, state: dict[str, torch.Tensor], source: str, allow_fill: bool = False) -> None:
    """load_state_dict with one message naming every missing, unexpected and wrong-shaped key."""
    own = model.state_dict()
    missing = [k for k in own if k not in state and not (allow_fill and _fillable(k, model))]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k} (file {tuple(state[k].shape)}, model {tuple(own[k].shape)})"
              for k in own if k in state and state[k].shape != own[k].shape]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"missing keys: {_describe(missing)}")
        if unexpected:
            parts.append(f"unexpected keys: {_describe(unexpected)}")
        if shapes:
            parts.append(f"wrong shapes: {_describe(shapes)}")
        raise ModelFileError(
            f"the weights in {source} do not fit the model: " + "; ".join(parts),
            "check the architecture (arch, depth, width, num_classes); for a foreign checkpoint set "
            "strip_prefix (e.g. 'module.') and key_map (e.g. {fc: linear}) so its names match",
        )
    merged = {k: state[k] if k in state else own[k] for k in own}
    model.load_state_dict(merged, strict=True)


def _extract_state_dict(payload: Any, path: Path) -> dict[str, torch.Tensor]:
    if isinstance(payload, dict):
        for key in ("state_dict", "model_state_dict", "model", "net"):
            if isinstance(payload.get(key), dict):
                payload = payload[key]
                break
    if not isinstance(payload, dict) or not all(isinstance(v, torch.Tensor) for v in payload.values()):
        raise ModelFileError(
            f"{path} holds no state_dict (expected a dict of tensors, or one under 'state_dict')",
            "save the weights with torch.save(model.state_dict(), path)",
        )
    return payload


def load_foreign_weights(model: nn.Module, path: str | Path, strip_prefix: str = "",
                         key_map: dict[str, str] | None = None) -> None:
    """Load a plain state_dict (or {'state_dict': ...}) file into ``model``'s backbone.

    ``strip_prefix`` removes e.g. DataParallel's "module."; ``key_map`` renames key
    prefixes ({"fc": "linear"} turns "fc.weight" into "linear.weight").
    """
    path = Path(path)
    load_foreign_state(model, safe_torch_load(path), path, strip_prefix, key_map)


def load_foreign_state(model: nn.Module, payload: Any, path: Path, strip_prefix: str = "",
                       key_map: dict[str, str] | None = None) -> None:
    """load_foreign_weights on the already-read contents of the file at ``path``."""
    state = _extract_state_dict(payload, path)
    renamed: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if strip_prefix and key.startswith(strip_prefix):
            key = key[len(strip_prefix):]
        for old, new in (key_map or {}).items():
            if key == old or key.startswith(old + "."):
                key = new + key[len(old):]
                break
        renamed[key] = value.float() if value.is_floating_point() else value
    target = backbone(model)
    _load_state(target, renamed, str(path), allow_fill=True)
