"""Any torchvision classifier, with its head resized and its first convolution adapted.

torchvision is imported inside the functions: it costs over a second at start-up, and most
commands never build a torchvision model.
"""

from __future__ import annotations

import torch
from torch import nn

from distillcli.errors import ModelFileError

# Builders that add auxiliary classifiers (and return tuples in training mode) unless told not to.
_AUX_HEADS = {"googlenet", "inception_v3"}


def build_torchvision(name: str, num_classes: int, in_channels: int = 3, weights: str | None = None,
                      pretrained: bool = False) -> nn.Module:
    """torchvision classifier ``name`` (checked by ``models.sources``); ``weights``: "DEFAULT" (or
    ``pretrained``) for torchvision's pretrained weights, or the path of a state_dict of the
    unmodified model (e.g. torchvision's own download, ``resnet18-f37072fd.pth``), loaded offline.

    The last ``Linear`` (or, for SqueezeNet, the last 1x1 ``Conv2d``) becomes a fresh layer
    with ``num_classes`` outputs. For ``in_channels != 3`` the first convolution is replaced by
    one whose kernel is the mean of the original RGB kernels, scaled by ``3 / in_channels``,
    so pretrained filters respond to a grey image as they did to its RGB copy.
    """
    import torchvision

    extra = {"aux_logits": False} if name in _AUX_HEADS else {}
    hub = "DEFAULT" if pretrained or (weights or "").upper() == "DEFAULT" else None
    try:
        model = torchvision.models.get_model(name, weights=hub, **extra)
    except (OSError, RuntimeError) as exc:
        raise ModelFileError(
            f"pretrained weights for torchvision model {name!r} could not be downloaded or read ({exc})",
            "set pretrained: false to start from random weights, or put the weight file in the torch hub "
            "cache ($TORCH_HOME/hub/checkpoints, default ~/.cache/torch/hub/checkpoints) on a machine "
            "without internet",
        ) from exc
    if weights is not None and hub is None:
        from distillcli.models.weights import load_foreign_weights

        load_foreign_weights(model, weights)
    _replace_head(model, num_classes)
    if in_channels != 3:
        _adapt_first_conv(model, in_channels)
    return model


def _replace(model: nn.Module, path: str, new: nn.Module) -> None:
    parent, _, attr = path.rpartition(".")
    setattr(model.get_submodule(parent), attr, new)


def _replace_head(model: nn.Module, num_classes: int) -> None:
    path, old = [(n, m) for n, m in model.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))][-1]
    new: nn.Module
    if isinstance(old, nn.Linear):
        new = nn.Linear(old.in_features, num_classes, bias=old.bias is not None)
    else:
        bias = old.bias is not None
        new = nn.Conv2d(old.in_channels, num_classes, old.kernel_size, old.stride, old.padding, bias=bias)
    _replace(model, path, new)


def _adapt_first_conv(model: nn.Module, in_channels: int) -> None:
    path, old = next((n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d))
    new = nn.Conv2d(
        in_channels,
        old.out_channels,
        old.kernel_size,
        old.stride,
        old.padding,
        old.dilation,
        old.groups,
        bias=old.bias is not None,
        padding_mode=old.padding_mode,
    )
    with torch.no_grad():
        mean = old.weight.mean(dim=1, keepdim=True) * (old.in_channels / in_channels)
        new.weight.copy_(mean.expand_as(new.weight))
        if old.bias is not None:
            new.bias.copy_(old.bias)
    _replace(model, path, new)
    if getattr(model, "transform_input", False):
        # Converts ImageNet-normalised RGB to [-1, 1]; meaningless for other channel counts.
        model.transform_input = False
