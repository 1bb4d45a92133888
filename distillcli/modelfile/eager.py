"""The eager model file (``.pt``): header + per-layer structure + state_dict, loadable with
``torch.load(weights_only=True)``, so reading one never runs code from it. ``structure``
holds the constructor arguments of layers that compression changed (pruned channel
counts, see models.structure), so a pruned model rebuilds without the script that made it.
"""

from __future__ import annotations

import json
import pickle
import re
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from distillcli.atomic_write import atomic_path
from distillcli.errors import ModelFileError
from distillcli.modelfile.header import ModelFile, check_format
from distillcli.models.build import build_model
from distillcli.models.handle import ArchSpec, ModelHandle
from distillcli.models.structure import apply_structure, capture_structure


def save_eager(handle: ModelHandle, header: dict[str, Any], path: Path) -> None:
    payload = json.loads(json.dumps(header))  # plain, unshared objects: equal headers pickle to equal bytes
    payload["structure"] = capture_structure(handle.module)
    # compact copies: a view would save its whole storage, so equal models would give unequal files
    payload["state_dict"] = {k: v.detach().to("cpu").clone(memory_format=torch.contiguous_format)
                             for k, v in handle.module.state_dict().items()}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_eager(path: Path) -> ModelFile:
    return model_from_payload(safe_torch_load(path), path)


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


def model_from_payload(payload: Any, path: Path) -> ModelFile:
    """Rebuild a model from the already-read contents of a ``.pt`` model file."""
    check_format(payload, path)
    arch = ArchSpec.from_dict(payload["arch"])
    model = apply_structure(build_model(arch), payload.get("structure", {}))
    load_state(model, payload["state_dict"], str(path))
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
