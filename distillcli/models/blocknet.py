"""Truncation: keep the first K feature blocks of a model and put a fresh classifier on top.

A student can be derived from its teacher's architecture this way. Truncating is
deterministic: the same architecture and K always give the same state_dict keys and shapes.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from distillcli.errors import OptionError

# Side of the all-zero image pushed through the kept layers to learn their output channels.
PROBE_SIZE = 32


class BlockNet(nn.Module):
    """Base of models made of a stem followed by a sequence of feature blocks."""

    def stem_layers(self) -> nn.Module:
        """The layers applied before the first feature block."""
        raise NotImplementedError

    def feature_blocks(self) -> list[nn.Module]:
        """The feature blocks, in forward order."""
        raise NotImplementedError

    def truncated(self, keep_blocks: int, num_classes: int) -> TruncatedNet:
        """A new model: deep copies of the stem and the first ``keep_blocks`` blocks, then
        global average pooling and a freshly initialised ``Linear`` classifier."""
        blocks = self.feature_blocks()
        if isinstance(keep_blocks, bool) or not isinstance(keep_blocks, int) or not 1 <= keep_blocks <= len(blocks):
            raise OptionError(
                f"keep_blocks must be an integer from 1 to {len(blocks)}, got {keep_blocks!r}",
                f"{type(self).__name__} has {len(blocks)} feature blocks; choose keep_blocks in 1..{len(blocks)}",
            )
        stem = copy.deepcopy(self.stem_layers())
        kept = nn.Sequential(*(copy.deepcopy(b) for b in blocks[:keep_blocks]))
        model = TruncatedNet(stem, kept, num_classes, _output_channels(nn.Sequential(stem, kept)))
        return model.train(self.training)


class TruncatedNet(BlockNet):
    """``stem`` -> ``blocks`` -> ``pool`` -> ``classifier``."""

    def __init__(self, stem: nn.Module, blocks: nn.Sequential, num_classes: int, channels: int) -> None:
        super().__init__()
        self.stem = stem
        self.blocks = blocks
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(channels, num_classes)
        param = next(blocks.parameters())
        self.classifier.to(device=param.device, dtype=param.dtype)

    def stem_layers(self) -> nn.Module:
        return self.stem

    def feature_blocks(self) -> list[nn.Module]:
        return list(self.blocks)

    def forward(self, x: Tensor) -> Tensor:
        x = self.blocks(self.stem(x))
        return self.classifier(torch.flatten(self.pool(x), 1))


def _output_channels(trunk: nn.Sequential) -> int:
    """Channels produced by ``trunk``, found by pushing a zero image through it in eval mode."""
    first_conv = next(m for m in trunk.modules() if isinstance(m, nn.Conv2d))
    weight = first_conv.weight
    probe = torch.zeros(1, first_conv.in_channels, PROBE_SIZE, PROBE_SIZE, device=weight.device, dtype=weight.dtype)
    trunk.eval()
    with torch.no_grad():
        return int(trunk(probe).shape[1])
