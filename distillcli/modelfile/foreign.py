"""Foreign checkpoints: a bare state_dict, ``{'state_dict': ...}`` or a ``.safetensors`` file written by
someone else's code, loaded into a model with prefix stripping and key renaming; every key of the
file must find its place in the model and every weight of the model must come from the file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from distillcli.errors import ModelFileError
from distillcli.modelfile.eager import load_state, safe_torch_load
from distillcli.models.build import backbone


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
