"""`distill import`: a checkpoint written by someone else's code becomes a distill model file.

The checkpoint is a state_dict (also under 'state_dict', 'model' ...), a ``.safetensors`` file, or,
only with the user's consent, a whole pickled module (``torch.save(model)``, whose loading runs
code). Every key must find its place in the model built from ``arch`` and every weight of the model
must come from the file (``load_state``), so a file that loads is the model the user had.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from distillcli.data.config import IMAGENET_MEAN, IMAGENET_STD, PretrainedInput
from distillcli.errors import ModelFileError, OptionError
from distillcli.models.weights import load_foreign_state, read_weights
from distillcli.models.build import backbone, build_model
from distillcli.models.handle import ArchSpec, ModelHandle
from distillcli.models.sources import architecture_only, pretrained_input


def default_input(arch: str) -> PretrainedInput:
    """How the model was pretrained to see images where its source says, else ImageNet's at 224."""
    return pretrained_input(arch) or PretrainedInput(IMAGENET_MEAN, IMAGENET_STD, 224)


@dataclass
class Imported:
    handle: ModelHandle
    keys: int  # tensors taken from the checkpoint


def read_checkpoint(path: Path, trust_code: bool) -> Any:
    """The checkpoint's contents; a pickled module only with consent (loading it runs code)."""
    try:
        return read_weights(path)
    except ModelFileError as refused:
        if not trust_code or "would import" not in refused.message:
            if "would import" in refused.message:
                raise ModelFileError(refused.message, "if it is a whole model saved with torch.save(model) and you "
                                     "trust its source, add --trust-code (loading it runs its code)") from None
            raise
    payload = torch.load(path, map_location="cpu", weights_only=False)  # the user consented
    return payload.state_dict() if isinstance(payload, nn.Module) else payload


def head_classes(arch: str, in_channels: int, kwargs: dict[str, Any], state: dict[str, torch.Tensor],
                 strip_prefix: str, key_map: dict[str, str]) -> int:
    """The number of classes the checkpoint's classifier has: the outputs of the model's last weight."""
    probe = ArchSpec(arch, 1, in_channels, [0.0] * in_channels, [1.0] * in_channels, kwargs)
    names = [k for k, v in backbone(build_model(probe)).state_dict().items() if v.dim() >= 2]
    mapped = {_renamed(k, strip_prefix, key_map): v for k, v in state.items()}
    if not names or names[-1] not in mapped:
        raise OptionError(f"cannot tell the number of classes from the checkpoint (no {names[-1] if names else 'head'} "
                          "weight in it)", "give --num-classes N")
    return int(mapped[names[-1]].shape[0])


def _renamed(key: str, strip_prefix: str, key_map: dict[str, str]) -> str:
    if strip_prefix and key.startswith(strip_prefix):
        key = key[len(strip_prefix):]
    for old, new in key_map.items():
        if key == old or key.startswith(old + "."):
            return new + key[len(old):]
    return key


def import_checkpoint(path: Path, arch: str, *, num_classes: int | None, in_channels: int, kwargs: dict[str, Any],
                      mean: list[float], std: list[float], strip_prefix: str = "",
                      key_map: dict[str, str] | None = None, trust_code: bool = False) -> Imported:
    """The model ``arch`` holding the checkpoint's weights (``num_classes``: default, the checkpoint's)."""
    key_map = key_map or {}
    payload = read_checkpoint(path, trust_code)
    if isinstance(payload, dict) and not all(isinstance(v, torch.Tensor) for v in payload.values()):
        for key in ("state_dict", "model_state_dict", "model", "net", "state_dict_ema"):
            if isinstance(payload.get(key), dict):
                payload = payload[key]
                break
    if not isinstance(payload, dict):
        raise ModelFileError(f"{path} holds no state_dict", "save the weights with torch.save(model.state_dict(), path)")
    kwargs = architecture_only(arch, kwargs)  # the weights come from the checkpoint
    classes = num_classes or head_classes(arch, in_channels, kwargs, payload, strip_prefix, key_map)
    spec = ArchSpec(arch, classes, in_channels, list(mean), list(std), kwargs)
    handle = ModelHandle(build_model(spec), spec)
    load_foreign_state(handle.module, payload, path, strip_prefix, key_map)
    handle.module.eval()
    return Imported(handle, len(payload))
