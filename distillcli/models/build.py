"""One build path: registry backbone -> optional truncation -> normalisation wrapper."""

from __future__ import annotations

import torch
from torch import nn

from distillcli.errors import OptionError
from distillcli.models.classifier import ImageClassifier
from distillcli.models.handle import ArchSpec
from distillcli.models.backbones import build_backbone


def build_model(spec: ArchSpec) -> ImageClassifier:
    """A freshly initialised model for ``spec`` (weights are loaded by the caller)."""
    if spec.keep_blocks is None:
        net = build_backbone(spec.name, spec.num_classes, spec.in_channels, **spec.kwargs)
    else:
        full = build_backbone(spec.name, spec.num_classes, spec.in_channels, **spec.kwargs)
        if not hasattr(full, "truncated"):
            raise OptionError(
                f"model {spec.name!r} cannot be truncated to its first blocks",
                "use keep_blocks with a CIFAR model (resnet*, vgg*_bn, mobilenetv2, cnn), or name a student arch",
            )
        net = full.truncated(spec.keep_blocks, spec.num_classes)
    return ImageClassifier(net, spec.mean, spec.std)


def backbone(model: nn.Module) -> nn.Module:
    """The network inside the normalisation wrapper (the module foreign weights load into)."""
    return model.net if isinstance(model, ImageClassifier) else model


def place(module: nn.Module, device: torch.device | str, channels_last: bool = False) -> nn.Module:
    """Move a module to a device, in NHWC memory format when asked (faster convolutions)."""
    module = module.to(device)
    return module.to(memory_format=torch.channels_last) if channels_last else module
