"""Find the pruning ratio that gives a wanted reduction (e.g. 2x fewer MACs)."""

from __future__ import annotations

import math
from typing import Callable

from distillcli.errors import TargetUnreachable


TOLERANCE = 1e-3  # the bisection's resolution in ratio: the plan at ratio - TOLERANCE is short of the step


def search_ratio(reduction: Callable[[float], float], target: float, high: float,
                 tolerance: float = TOLERANCE, max_iter: int = 30) -> float:
    """Smallest ratio in (0, high] whose ``reduction(ratio)`` reaches ``target``, by bisection.

    ``reduction`` must not decrease with the ratio (more channels removed, fewer MACs);
    rounding makes it a step function, so the result is the first ratio past the step that
    crosses the target.
    """
    best = reduction(high)
    if best < target:
        raise TargetUnreachable(
            f"cannot reach a {target:g}x reduction: removing {high:.0%} of the channels gives {best:.2f}x",
            "ask for less (target_mac_reduction), raise max_layer_ratio, or ignore/override fewer layers", best)
    low = 0.0
    for _ in range(max_iter):
        if high - low <= tolerance:
            break
        mid = (low + high) / 2
        if reduction(mid) >= target:
            high = mid
        else:
            low = mid
    return high


def nearest_ratio(reduction: Callable[[float], float], target: float, high: float) -> tuple[float, float | None]:
    """A ratio whose reduction is nearest ``target``, and what the plan on the other side of it gives.

    Rounding channel counts makes the reduction a step function, and its steps can be wide (ResNet-56
    with int8 rounding on AMX: 1.97x, then 2.23x, which halves its last stage again). Of the plan just
    short of the target and the first one to reach it, the nearer by ratio is taken (1.9x and 2.1x are
    equally near 2x; ties go to the one that reaches it). The other is None when the plan short of
    the target prunes nothing.
    """
    past = search_ratio(reduction, target, high)
    if past <= TOLERANCE:
        return past, None
    short, reached = reduction(past - TOLERANCE), reduction(past)
    if short <= 1.0:
        return past, None
    if math.log(target / short) < math.log(reached / target):
        return past - TOLERANCE, reached
    return past, short
