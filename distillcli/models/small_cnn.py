"""A small plain CNN for quick demos and tests: ``depth`` stages of conv3x3-BN-ReLU-maxpool
with ``width``, 2*width, 4*width ... channels, then global average pooling and a classifier."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from distillcli.errors import OptionError
from distillcli.models.common import init_weights
from distillcli.models.blocknet import BlockNet


class SmallCNN(BlockNet):
    def __init__(self, num_classes: int = 10, in_channels: int = 3, width: int = 32, depth: int = 3) -> None:
        super().__init__()
        for key, value, limit in (("width", width, 4096), ("depth", depth, 12)):
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= limit:
                raise OptionError(
                    f"cnn: {key} must be an integer from 1 to {limit}, got {value!r}",
                    "use e.g. width: 32 (channels of the first stage) and depth: 3 (number of stages)",
                )
        stages: list[nn.Module] = []
        channels = in_channels
        for i in range(depth):
            out = width * 2**i
            stages.append(
                nn.Sequential(
                    nn.Conv2d(channels, out, 3, padding=1, bias=False),
                    nn.BatchNorm2d(out),
                    nn.ReLU(inplace=True),
                    # ceil_mode keeps at least one pixel however many stages there are.
                    nn.MaxPool2d(2, ceil_mode=True),
                )
            )
            channels = out
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(channels, num_classes)
        init_weights(self)

    def stem_layers(self) -> nn.Module:
        return nn.Identity()

    def feature_blocks(self) -> list[nn.Module]:
        return list(self.stages)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(torch.flatten(self.pool(self.stages(x)), 1))


def cnn(num_classes: int = 10, in_channels: int = 3, width: int = 32, depth: int = 3) -> SmallCNN:
    """Small plain CNN: ``depth`` conv stages, channels doubling from ``width``."""
    return SmallCNN(num_classes, in_channels, width, depth)
