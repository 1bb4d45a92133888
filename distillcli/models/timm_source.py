"""timm models (``arch: timm:<name>``): built by ``timm.create_model``, which resizes the
classifier to ``num_classes`` and adapts the stem to ``in_channels`` itself (also for pretrained
weights). timm is imported here only: it costs seconds at start-up."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from distillcli.data.config import INTERPOLATIONS, PretrainedInput
from distillcli.errors import ModelFileError


def build_timm(name: str, num_classes: int, in_channels: int = 3, pretrained: bool | str = False,
               **args: Any) -> nn.Module:
    """timm model ``name``; ``pretrained``: true for timm's published weights (downloaded once), or
    the path of a local checkpoint of the model (works offline); ``args`` go to ``timm.create_model``."""
    import timm

    overlay = None
    if isinstance(pretrained, str):
        path = Path(pretrained).expanduser()
        if not path.is_file():
            raise ModelFileError(f"timm:{name}: pretrained weights file not found: {pretrained}",
                                 "give the path of a checkpoint of this model, or pretrained: true to download "
                                 "timm's (needs internet once)")
        overlay = {"file": str(path)}
    try:
        return timm.create_model(name, pretrained=bool(pretrained), num_classes=num_classes, in_chans=in_channels,
                                 pretrained_cfg_overlay=overlay, **args)
    except (OSError, RuntimeError, ValueError) as exc:  # no network, no cache, a file of another model
        if not pretrained:
            raise
        raise ModelFileError(
            f"pretrained weights for timm model {name!r} could not be downloaded or read ({str(exc)[:300]})",
            "without internet, download the weights on another machine (e.g. the model's pytorch_model.bin or "
            "model.safetensors from its Hugging Face page) and give their path: pretrained: /path/to/file; or set "
            "pretrained: false to start from random weights",
        ) from exc


def pretrained_input(name: str) -> PretrainedInput | None:
    """How timm model ``name``'s default pretrained weights expect images, or None."""
    import timm

    cfg = timm.models.get_pretrained_cfg(name)
    if cfg is None:
        return None
    interpolation = cfg.interpolation if cfg.interpolation in INTERPOLATIONS else "bilinear"
    return PretrainedInput(list(cfg.mean), list(cfg.std), int(cfg.input_size[-1]), interpolation,
                           float(cfg.crop_pct or 0.875))
