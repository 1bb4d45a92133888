"""Every model name a recipe may use and the options each takes, known without importing torch:
what `distill validate` checks ``arch:`` against and `distill list models` prints.

The models register their factories in ``models.registry.MODELS`` (torch); MODEL_OPTIONS lists
the same names with their factories' options in signature order, and torchvision's classifiers
are listed as the release named below has them (another release is asked directly, importing
it). tests/cli/test_fast_start.py keeps both lists equal to what they copy.
"""

from __future__ import annotations

from importlib import metadata
from typing import Any

from distillcli.errors import OptionError, UnknownNameError
from distillcli.registry import Registry, closest, matching

PREFIX = "torchvision:"

MODEL_OPTIONS: Registry[tuple[str, ...]] = Registry("model")
for _name, _options in {"cifar_resnet": ("depth", "width", "shortcut"),
                        **{f"resnet{d}": ("width", "shortcut") for d in (8, 14, 20, 32, 44, 56, 110)},
                        **{f"vgg{d}_bn": ("width",) for d in (11, 13, 16, 19)},
                        "mobilenetv2": ("width",), "cnn": ("width", "depth")}.items():
    MODEL_OPTIONS.register(_name)(_options)
TORCHVISION_OPTIONS = ("pretrained",)  # of models.torchvision_adapter.build_torchvision

TORCHVISION_RELEASE = "0.29"  # its torchvision.models.list_models(module=torchvision.models):
_TORCHVISION_MODELS = (
    "alexnet", "convnext_base", "convnext_large", "convnext_small", "convnext_tiny", "densenet121",
    "densenet161", "densenet169", "densenet201", "efficientnet_b0", "efficientnet_b1", "efficientnet_b2",
    "efficientnet_b3", "efficientnet_b4", "efficientnet_b5", "efficientnet_b6", "efficientnet_b7",
    "efficientnet_v2_l", "efficientnet_v2_m", "efficientnet_v2_s", "googlenet", "inception_v3", "maxvit_t",
    "mnasnet0_5", "mnasnet0_75", "mnasnet1_0", "mnasnet1_3", "mobilenet_v2", "mobilenet_v3_large",
    "mobilenet_v3_small", "regnet_x_16gf", "regnet_x_1_6gf", "regnet_x_32gf", "regnet_x_3_2gf",
    "regnet_x_400mf", "regnet_x_800mf", "regnet_x_8gf", "regnet_y_128gf", "regnet_y_16gf", "regnet_y_1_6gf",
    "regnet_y_32gf", "regnet_y_3_2gf", "regnet_y_400mf", "regnet_y_800mf", "regnet_y_8gf", "resnet101",
    "resnet152", "resnet18", "resnet34", "resnet50", "resnext101_32x8d", "resnext101_64x4d", "resnext50_32x4d",
    "shufflenet_v2_x0_5", "shufflenet_v2_x1_0", "shufflenet_v2_x1_5", "shufflenet_v2_x2_0", "squeezenet1_0",
    "squeezenet1_1", "swin_b", "swin_s", "swin_t", "swin_v2_b", "swin_v2_s", "swin_v2_t", "vgg11", "vgg11_bn",
    "vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19", "vgg19_bn", "vit_b_16", "vit_b_32", "vit_h_14",
    "vit_l_16", "vit_l_32", "wide_resnet101_2", "wide_resnet50_2",
)


def torchvision_listed() -> bool:
    """Whether the installed torchvision is the release whose names are listed here."""
    return ".".join(metadata.version("torchvision").split(".")[:2]) == TORCHVISION_RELEASE


def torchvision_names() -> list[str]:
    """Names of torchvision's image classifiers."""
    if torchvision_listed():
        return list(_TORCHVISION_MODELS)
    import torchvision

    return list(torchvision.models.list_models(module=torchvision.models))


def model_names(pattern: str = "*") -> list[str]:
    """Registered models, then ``torchvision:<name>``; ``pattern`` matches the full name."""
    return MODEL_OPTIONS.names(pattern) + matching([PREFIX + n for n in torchvision_names()], pattern)


def check_arch_args(name: str, kwargs: dict[str, Any]) -> None:
    """Raise the error building model ``name`` with options ``kwargs`` would raise: an unknown name or option."""
    valid = list(_options(name))
    for key in kwargs:
        if key not in valid:
            guess = closest(key, valid)
            listing = f"valid options: {', '.join(valid)}" if valid else "this model takes no options"
            raise OptionError(
                f"model {name!r} has no option {key!r}",
                f"did you mean {guess!r}? ({listing})" if guess else listing,
            )


def _options(name: str) -> tuple[str, ...]:
    if name.startswith(PREFIX):
        known = torchvision_names()
        if name[len(PREFIX):] not in known:
            guess = closest(name[len(PREFIX):], known)
            raise UnknownNameError(f"unknown torchvision model {name[len(PREFIX):]!r}",
                                   f"did you mean '{PREFIX}{guess}'?" if guess else
                                   "`distill list models 'torchvision:*'` lists them")
        return TORCHVISION_OPTIONS
    try:
        return MODEL_OPTIONS.get(name)
    except UnknownNameError as exc:
        if name in torchvision_names():
            raise UnknownNameError(exc.message, f"did you mean '{PREFIX}{name}'?") from None
        raise
