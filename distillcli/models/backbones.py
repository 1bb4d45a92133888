"""Build any model by its public name: registered CIFAR models or ``torchvision:<name>``."""

from __future__ import annotations

import functools
import inspect
from typing import Any, Callable

from torch import nn

from distillcli.errors import OptionError, UnknownNameError
from distillcli.models import cifar_resnet, cifar_vgg, mobilenet, small_cnn  # noqa: F401  (they register)
from distillcli.models.registry import MODELS
from distillcli.models.torchvision_adapter import PREFIX, build_torchvision, torchvision_names
from distillcli.registry import closest

# Arguments build_backbone passes itself; every other factory parameter is a user option.
_FIXED = ("num_classes", "in_channels")


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
    factory = _factory(name)
    _check_options(name, factory, kwargs)
    return factory(num_classes=num_classes, in_channels=in_channels, **kwargs)


def check_arch_args(name: str, kwargs: dict[str, Any]) -> None:
    """Raise the error build_backbone would raise for an unknown name or option, without building."""
    _check_options(name, _factory(name), kwargs)


def _factory(name: str) -> Callable[..., nn.Module]:
    factory: Callable[..., nn.Module]
    if name.startswith(PREFIX):
        known = torchvision_names()
        if name[len(PREFIX):] not in known:
            guess = closest(name[len(PREFIX):], known)
            raise UnknownNameError(f"unknown torchvision model {name[len(PREFIX):]!r}",
                                   f"did you mean '{PREFIX}{guess}'?" if guess else
                                   "`distill list models 'torchvision:*'` lists them")
        factory = functools.partial(build_torchvision, name[len(PREFIX) :])
    else:
        try:
            factory = MODELS.get(name)
        except UnknownNameError as exc:
            if name in torchvision_names():
                raise UnknownNameError(exc.message, f"did you mean '{PREFIX}{name}'?") from None
            raise
    return factory


def _check_options(name: str, factory: Callable[..., nn.Module], kwargs: dict[str, Any]) -> None:
    params = inspect.signature(factory).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    valid = [p for p in params if p not in _FIXED]
    for key in kwargs:
        if key not in valid:
            guess = closest(key, valid)
            listing = f"valid options: {', '.join(valid)}" if valid else "this model takes no options"
            raise OptionError(
                f"model {name!r} has no option {key!r}",
                f"did you mean {guess!r}? ({listing})" if guess else listing,
            )
