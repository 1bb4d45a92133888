"""MobileNetV2 for 32x32 inputs (Sandler, Howard, Zhu, Zhmoginov, Chen: "MobileNetV2:
Inverted Residuals and Linear Bottlenecks", CVPR 2018).

CIFAR variant: the stem and the second stage use stride 1 instead of 2, so a 32x32 input
reaches the last stage at 4x4 (the paper's 224x224 reaches 7x7). Channels follow the paper's
table 2, scaled by ``width`` and rounded to a multiple of 8; the 1280-channel head conv is
only scaled for width > 1, as in the paper.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from distillcli.models.common import check_width, init_weights
from distillcli.models.blocknet import BlockNet
from distillcli.models.plans import MOBILENET_HEAD, MOBILENET_STAGES, MOBILENET_STEM, round_channels


def conv_bn_relu6(
    in_channels: int, out_channels: int, kernel: int = 1, stride: int = 1, groups: int = 1
) -> nn.Sequential:
    conv = nn.Conv2d(in_channels, out_channels, kernel, stride, kernel // 2, groups=groups, bias=False)
    return nn.Sequential(conv, nn.BatchNorm2d(out_channels), nn.ReLU6(inplace=True))


class InvertedResidual(nn.Module):
    """1x1 expansion, 3x3 depthwise, linear 1x1 projection; identity added when shapes match."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, expansion: int) -> None:
        super().__init__()
        hidden = in_channels * expansion
        expand = [conv_bn_relu6(in_channels, hidden)] if expansion != 1 else []
        self.conv = nn.Sequential(
            *expand,
            conv_bn_relu6(hidden, hidden, 3, stride, groups=hidden),
            nn.Conv2d(hidden, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
        )
        self.use_residual = stride == 1 and in_channels == out_channels

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv(x)
        return x + out if self.use_residual else out


class CifarMobileNetV2(BlockNet):
    def __init__(self, num_classes: int = 10, in_channels: int = 3, width: float = 1.0) -> None:
        super().__init__()
        width = check_width(width, "mobilenetv2")
        channels = round_channels(MOBILENET_STEM * width)
        self.stem = conv_bn_relu6(in_channels, channels, 3)
        blocks: list[nn.Module] = []
        for expansion, c, repeats, stride in MOBILENET_STAGES:
            out = round_channels(c * width)
            for i in range(repeats):
                blocks.append(InvertedResidual(channels, out, stride if i == 0 else 1, expansion))
                channels = out
        self.blocks = nn.Sequential(*blocks)
        head = round_channels(MOBILENET_HEAD * width) if width > 1.0 else MOBILENET_HEAD
        self.head = conv_bn_relu6(channels, head)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(head, num_classes)
        init_weights(self)

    def stem_layers(self) -> nn.Module:
        return self.stem

    def feature_blocks(self) -> list[nn.Module]:
        return list(self.blocks)

    def forward(self, x: Tensor) -> Tensor:
        x = self.head(self.blocks(self.stem(x)))
        return self.classifier(torch.flatten(self.pool(x), 1))


def mobilenetv2(num_classes: int = 10, in_channels: int = 3, width: float = 1.0) -> CifarMobileNetV2:
    """MobileNetV2, CIFAR variant."""
    return CifarMobileNetV2(num_classes, in_channels, width)
