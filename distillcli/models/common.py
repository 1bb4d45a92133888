"""Small helpers shared by the CIFAR model definitions."""

from __future__ import annotations

from torch import nn

from distillcli.errors import OptionError


MAX_WIDTH = 64  # a channel multiplier beyond this is a typo, and would allocate gigabytes


def check_width(width: float, model: str) -> float:
    """Validate a channel multiplier given by the user."""
    if isinstance(width, bool) or not isinstance(width, (int, float)) or not 0 < width <= MAX_WIDTH:
        raise OptionError(
            f"{model}: width must be a number in (0, {MAX_WIDTH}], got {width!r}",
            "use e.g. width: 1.0 (full size) or width: 0.5 (half the channels)",
        )
    return float(width)


def init_weights(model: nn.Module) -> None:
    """He-normal convolutions, unit BatchNorm, small-normal classifier (He et al. 2015)."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, 0.01)
            nn.init.zeros_(m.bias)
