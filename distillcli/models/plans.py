"""The channel plans of the built-in models, torch-free: the layer widths each one builds, and
its parameter count computed from them, so that `distill validate` can compare a student with
its teacher without building either. tests/models check every count against the built model."""

from __future__ import annotations

from typing import Any

# VGG: 3x3 convolutions by output channels, "M" a 2x2 max-pool (Simonyan & Zisserman 2015, table 1)
POOL = "M"
VGG_CONFIGS: dict[int, list[int | str]] = {
    11: [64, POOL, 128, POOL, 256, 256, POOL, 512, 512, POOL, 512, 512, POOL],
    13: [64, 64, POOL, 128, 128, POOL, 256, 256, POOL, 512, 512, POOL, 512, 512, POOL],
    16: [64, 64, POOL, 128, 128, POOL, 256, 256, 256, POOL, 512, 512, 512, POOL, 512, 512, 512, POOL],
    19: [64, 64, POOL, 128, 128, POOL, *[256] * 4, POOL, *[512] * 4, POOL, *[512] * 4, POOL],
}

# MobileNetV2: (expansion t, output channels c, repeats n, stride s of the first repeat), the
# paper's table 2 with the second stage's stride lowered from 2 to 1 for CIFAR.
MOBILENET_STAGES = ((1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                    (6, 320, 1, 1))
MOBILENET_STEM = 32
MOBILENET_HEAD = 1280


def scaled(channels: int, width: float) -> int:
    """``channels * width`` rounded to an int, at least 1."""
    return max(1, round(channels * width))


def round_channels(channels: float, divisor: int = 8) -> int:
    """Nearest multiple of ``divisor`` (at least ``divisor``), never more than 10% below ``channels``."""
    rounded = max(divisor, int(channels + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * channels else rounded


def _conv_bn(cin: int, cout: int, kernel: int = 3, groups: int = 1) -> int:
    return cin // groups * cout * kernel * kernel + 2 * cout


def _linear(cin: int, cout: int) -> int:
    return cin * cout + cout


def resnet_params(num_classes: int, in_channels: int, depth: int = 20, width: float = 1.0, shortcut: str = "A") -> int:
    n = (depth - 2) // 6
    c = [scaled(k, width) for k in (16, 32, 64)]
    total, cin = _conv_bn(in_channels, c[0]), c[0]
    for stage, cout in enumerate(c):
        for block in range(n):
            total += _conv_bn(cin, cout) + _conv_bn(cout, cout)
            if str(shortcut).upper() == "B" and (cin != cout or (stage and not block)):
                total += _conv_bn(cin, cout, 1)
            cin = cout
    return total + _linear(cin, num_classes)


def vgg_params(num_classes: int, in_channels: int, depth: int = 16, width: float = 1.0) -> int:
    total, cin = 0, in_channels
    for item in VGG_CONFIGS[depth]:
        if item != POOL:
            cout = scaled(int(item), width)
            total, cin = total + _conv_bn(cin, cout), cout
    return total + _linear(cin, num_classes)


def mobilenetv2_params(num_classes: int, in_channels: int, width: float = 1.0) -> int:
    cin = round_channels(MOBILENET_STEM * width)
    total = _conv_bn(in_channels, cin)
    for t, c, repeats, _ in MOBILENET_STAGES:
        cout = round_channels(c * width)
        for _ in range(repeats):
            hidden = cin * t
            total += (_conv_bn(cin, hidden, 1) if t != 1 else 0) + _conv_bn(hidden, hidden, 3, hidden)
            total, cin = total + _conv_bn(hidden, cout, 1), cout
    head = round_channels(MOBILENET_HEAD * width) if width > 1.0 else MOBILENET_HEAD
    return total + _conv_bn(cin, head, 1) + _linear(head, num_classes)


def cnn_params(num_classes: int, in_channels: int, width: int = 32, depth: int = 3) -> int:
    total, cin = 0, in_channels
    for i in range(depth):
        total, cin = total + _conv_bn(cin, width * 2**i), width * 2**i
    return total + _linear(cin, num_classes)


def param_count(counter: Any, options: dict[str, Any], num_classes: int = 10, in_channels: int = 3) -> int | None:
    """``counter(num_classes, in_channels, **options)``, or None where the options do not fit it
    (validate reports those on their own)."""
    try:
        return int(counter(num_classes, in_channels, **options))
    except (TypeError, ValueError, KeyError, ZeroDivisionError):
        return None
