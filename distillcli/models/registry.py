"""The model registry. A factory has the signature
``factory(num_classes: int, in_channels: int = 3, **kwargs) -> nn.Module``
and is registered under the public name users type in recipes (``resnet20``)."""

from __future__ import annotations

from typing import Callable

from torch import nn

from distillcli.registry import Registry

ModelFactory = Callable[..., nn.Module]

MODELS: Registry[ModelFactory] = Registry("model")
