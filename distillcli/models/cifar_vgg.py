"""VGG with BatchNorm for 32x32 inputs (Simonyan & Zisserman: "Very Deep Convolutional
Networks for Large-Scale Image Recognition", ICLR 2015; BatchNorm after every convolution
as in Ioffe & Szegedy 2015).

CIFAR variant: the paper's 3x3 convolution stacks and five 2x2 max-pools, then global
average pooling and a single ``Linear`` classifier instead of the three large FC layers.
The pools round up (``ceil_mode``), so inputs smaller than 32x32 (down to 1x1) still work.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from distillcli.models.common import check_width, init_weights
from distillcli.models.blocknet import BlockNet
from distillcli.models.plans import POOL, VGG_CONFIGS, scaled

class CifarVGG(BlockNet):
    """``features`` holds one unit per convolution: conv3x3-BN-ReLU, plus the max-pool
    that follows it in the configuration."""

    def __init__(self, depth: int, num_classes: int = 10, in_channels: int = 3, width: float = 1.0) -> None:
        super().__init__()
        width = check_width(width, f"vgg{depth}_bn")
        units: list[nn.Sequential] = []
        channels = in_channels
        for item in VGG_CONFIGS[depth]:
            if item == POOL:
                units[-1].append(nn.MaxPool2d(2, ceil_mode=True))
                continue
            out = scaled(int(item), width)
            conv = nn.Conv2d(channels, out, 3, padding=1, bias=False)
            units.append(nn.Sequential(conv, nn.BatchNorm2d(out), nn.ReLU(inplace=True)))
            channels = out
        self.features = nn.Sequential(*units)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(channels, num_classes)
        init_weights(self)

    def stem_layers(self) -> nn.Module:
        return nn.Identity()

    def feature_blocks(self) -> list[nn.Module]:
        return list(self.features)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


def cifar_vgg(depth: int, num_classes: int = 10, in_channels: int = 3, width: float = 1.0) -> CifarVGG:
    """VGG-``depth`` with BatchNorm, CIFAR variant (entries vgg11_bn ... vgg19_bn fix the depth)."""
    return CifarVGG(depth, num_classes, in_channels, width)
