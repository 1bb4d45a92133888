"""Build any model by its ``arch:``: a built-in name or ``<source>:<name>`` (see ``models.sources``)."""

from __future__ import annotations

from typing import Any

from torch import nn

from distillcli.errors import OptionError
from distillcli.models.registry import MODELS
from distillcli.models.sources import check_arch_args, require_consent, split_arch


def build_backbone(name: str, num_classes: int, in_channels: int = 3, **kwargs: Any) -> nn.Module:
    """Model ``name`` with a ``num_classes``-way classifier for ``in_channels``-channel images.

    ``kwargs`` are the model's options (``width``, ``depth``, ``weights`` ...).
    """
    for key, value in (("num_classes", num_classes), ("in_channels", in_channels)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise OptionError(f"{key} must be a positive integer, got {value!r}", f"check the dataset's {key}")
    check_arch_args(name, kwargs)
    source, local = split_arch(name)
    if source is None:
        entry = MODELS.get(local)
        return entry.load()(num_classes=num_classes, in_channels=in_channels, **entry.fixed, **kwargs)
    if source.runs_user_code:
        require_consent(name)
    return source.load()(local, num_classes=num_classes, in_channels=in_channels, **kwargs)
