"""Weights files, read safely: ``torch.load`` that never runs code from the file (and refuses zip
bombs), safetensors, and loading a state dict into a model with one message naming every key
that does not fit. Foreign checkpoints (a bare state_dict, ``{'state_dict': ...}`` or a
``.safetensors`` file written by someone else's code) load with prefix stripping and key
renaming; every key of the file must find its place in the model and every weight of the model
must come from the file. Model files (``modelfile``) are read through here too."""

from __future__ import annotations

import pickle
import re
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from distillcli.errors import ModelFileError
from distillcli.models.build import backbone


def check_model_path(path: Path) -> None:
    """Refuse a missing path or a folder before any loader opens it."""
    if path.is_dir():
        raise ModelFileError(f"{path} is a directory, not a model file",
                             "give the model file itself (runs write them to runs/<run>/models/NAME.pt)")
    if not path.is_file():
        raise ModelFileError(f"model file not found: {path}", "check the path (runs write models to runs/<run>/models/)")


def safe_torch_load(path: str | Path) -> Any:
    """torch.load that never runs code from the file and explains every failure."""
    path = Path(path)
    check_model_path(path)
    _check_expansion(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(e))
        if not found:  # text or junk that happens to start like a pickle
            raise ModelFileError(
                f"refused to load {path}: it is corrupt, not a PyTorch file, or holds objects other than tensors "
                f"and plain data ({(str(e).splitlines() or [''])[0][:120]})",
                "re-create or re-download the file; a partial copy is the usual cause",
            ) from None
        raise ModelFileError(
            f"refused to load {path}: it would import {found.group(1)}, and loading it could run code from the file",
            "only load files from a source you trust; re-save the weights as a plain state_dict "
            "(torch.save(model.state_dict(), path)) and load that instead",
        ) from None
    except Exception as e:  # empty, text, truncated or another format: torch.load fails in many ways
        first = (str(e).splitlines() or [""])[0][:160]
        first = first if isinstance(e, RuntimeError) and first else f"{type(e).__name__}: {first}".rstrip(": ")
        raise ModelFileError(
            f"cannot read {path}: the file is corrupt or not a PyTorch file ({first})",
            "re-create or re-download the file; a partial copy is the usual cause",
        ) from None


def _check_expansion(path: Path) -> None:
    """PyTorch writes uncompressed zip archives; a compressed one can expand a small file into
    gigabytes of tensors (a zip bomb), so refuse archives that declare far more than they hold."""
    try:
        if not zipfile.is_zipfile(path):
            return
        with zipfile.ZipFile(path) as archive:
            declared = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        return  # torch.load reports it
    if declared > 2 * path.stat().st_size + (16 << 20):
        raise ModelFileError(f"refused to load {path}: its compressed contents expand to {declared / 2**30:.1f} GiB",
                             "PyTorch writes uncompressed files; re-save it with torch.save")


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


def load_state(model: nn.Module, state: dict[str, torch.Tensor], source: str, allow_fill: bool = False) -> None:
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
    load_foreign_state(model, read_weights(path), path, strip_prefix, key_map)


def read_weights(path: Path) -> Any:
    """The contents of a weights file: torch (never running code from it) or safetensors."""
    if path.suffix != ".safetensors":
        return safe_torch_load(path)
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not path.is_file():
        raise ModelFileError(f"weights file not found: {path}", "check the path")
    try:
        return load_file(path, device="cpu")
    except (SafetensorError, OSError, ValueError) as e:
        raise ModelFileError(f"cannot read {path} as safetensors ({e})", "re-create or re-download the file") from None


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
    load_state(target, renamed, str(path), allow_fill=True)
