"""CIFAR ResNets (He, Zhang, Ren, Sun: "Deep Residual Learning for Image Recognition",
CVPR 2016, section 4.2): a 3x3 stem, three stages of ``n`` basic blocks at 16/32/64 channels
(stride 2 between stages), global average pooling and a linear classifier; depth = 6n + 2.

Attribute names match the widely shared akamaster/pytorch_resnet_cifar10 checkpoints
(``conv1``, ``bn1``, ``layer1..3``, ``linear``), so their state_dicts load directly; only the
``gather_index`` buffers of option-A shortcuts are extra (see ``ZeroPadShortcut``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from distillcli.errors import OptionError
from distillcli.models.common import check_width, init_weights
from distillcli.models.blocknet import BlockNet
from distillcli.models.plans import scaled
from distillcli.models.structure import reshapeable

SHORTCUTS = ("A", "B")


@reshapeable
class ZeroPadShortcut(nn.Module):
    """Parameter-free shortcut (the paper's option A): subsample spatially, then lay the
    input channels out among zero channels.

    Output channel ``j`` is input channel ``gather_index[j]``, or zero where
    ``gather_index[j] == in_channels`` (the all-zero channel appended to the input). Initially
    the identity channels sit in the middle with zero channels on both sides, as in the
    classic ``F.pad`` formulation. Keeping the layout in a buffer lets a pruner remove
    channels on either side by editing ``gather_index`` alone.
    """

    # Buffers a checkpoint loader may take from a fresh model when a checkpoint lacks them.
    derived_buffers = ("gather_index",)
    gather_index: Tensor

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.stride = stride
        # Pruned shapes may have fewer outputs than inputs; their layout comes from the file.
        kept = min(in_channels, out_channels)
        left = (out_channels - kept) // 2
        index = torch.full((out_channels,), in_channels, dtype=torch.long)
        index[left : left + kept] = torch.arange(kept)
        self.register_buffer("gather_index", index)

    @staticmethod
    def structure_args(m: "ZeroPadShortcut") -> dict[str, int]:
        """Constructor arguments of ``m`` as it is now (see models.structure)."""
        return {"in_channels": m.in_channels, "out_channels": m.gather_index.numel(), "stride": m.stride}

    def forward(self, x: Tensor) -> Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        zero = x.new_zeros(x.shape[0], 1, x.shape[2], x.shape[3])
        return torch.cat([x, zero], 1).index_select(1, self.gather_index)

    def extra_repr(self) -> str:
        return f"in_channels={self.in_channels}, out_channels={self.gather_index.numel()}, stride={self.stride}"


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers plus a shortcut, ReLU after the sum."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, shortcut: str) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut: nn.Module
        if stride == 1 and in_channels == out_channels:
            self.shortcut = nn.Identity()
        elif shortcut == "A":
            self.shortcut = ZeroPadShortcut(in_channels, out_channels, stride)
        else:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(BlockNet):
    def __init__(
        self,
        depth: int = 20,
        num_classes: int = 10,
        in_channels: int = 3,
        width: float = 1.0,
        shortcut: str = "A",
    ) -> None:
        super().__init__()
        if isinstance(depth, bool) or not isinstance(depth, int) or not 8 <= depth <= 1202 or (depth - 2) % 6:
            raise OptionError(
                f"cifar_resnet: depth must be 6n+2 with n >= 1 (8, 14, 20, 32, 44, 56, 110, ...), got {depth!r}",
                "pick a valid depth, e.g. depth: 20 or depth: 56",
            )
        width = check_width(width, "cifar_resnet")
        if not isinstance(shortcut, str) or shortcut.upper() not in SHORTCUTS:
            raise OptionError(
                f"cifar_resnet: shortcut must be 'A' or 'B', got {shortcut!r}",
                "use shortcut: A (parameter-free zero padding, the paper's CIFAR choice) "
                "or shortcut: B (1x1 convolution + BatchNorm)",
            )
        option = shortcut.upper()
        n = (depth - 2) // 6
        c1, c2, c3 = (scaled(c, width) for c in (16, 32, 64))
        self.conv1 = nn.Conv2d(in_channels, c1, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c1)
        self.layer1 = _stage(c1, c1, n, 1, option)
        self.layer2 = _stage(c1, c2, n, 2, option)
        self.layer3 = _stage(c2, c3, n, 2, option)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.linear = nn.Linear(c3, num_classes)
        init_weights(self)

    def stem_layers(self) -> nn.Module:
        return nn.Sequential(self.conv1, self.bn1, nn.ReLU())

    def feature_blocks(self) -> list[nn.Module]:
        return [*self.layer1, *self.layer2, *self.layer3]

    def forward(self, x: Tensor) -> Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.linear(torch.flatten(self.pool(x), 1))


def _stage(in_channels: int, out_channels: int, blocks: int, stride: int, shortcut: str) -> nn.Sequential:
    first = BasicBlock(in_channels, out_channels, stride, shortcut)
    rest = (BasicBlock(out_channels, out_channels, 1, shortcut) for _ in range(blocks - 1))
    return nn.Sequential(first, *rest)


def cifar_resnet(
    num_classes: int = 10, in_channels: int = 3, depth: int = 20, width: float = 1.0, shortcut: str = "A"
) -> CifarResNet:
    """CIFAR ResNet of any depth 6n+2."""
    return CifarResNet(depth, num_classes, in_channels, width, shortcut)
