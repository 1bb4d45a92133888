"""Build any model by its public name: registered CIFAR models or ``torchvision:<name>``."""

from __future__ import annotations

import functools
from typing import Any

from torch import nn

from distillcli.errors import OptionError
from distillcli.models import cifar_resnet, cifar_vgg, mobilenet, small_cnn  # noqa: F401  (they register)
from distillcli.models.names import PREFIX, check_arch_args
from distillcli.models.registry import MODELS
from distillcli.models.torchvision_adapter import build_torchvision


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching a shell-style pattern (``torchvision:<name>`` not included)."""
    return MODELS.names(pattern)


def build_backbone(name: str, num_classes: int, in_channels: int = 3, **kwargs: Any) -> nn.Module:
    """Model ``name`` with a ``num_classes``-way classifier for ``in_channels``-channel images.

    ``kwargs`` are the model's options (``width``, ``depth``, ``pretrained`` ...).
    """
    for key, value in (("num_classes", num_classes), ("in_channels", in_channels)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise OptionError(f"{key} must be a positive integer, got {value!r}", f"check the dataset's {key}")
    check_arch_args(name, kwargs)
    factory = functools.partial(build_torchvision, name[len(PREFIX):]) if name.startswith(PREFIX) else MODELS.get(name)
    return factory(num_classes=num_classes, in_channels=in_channels, **kwargs)
