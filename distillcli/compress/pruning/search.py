"""Find the pruning ratio that gives a wanted reduction (e.g. 2x fewer MACs)."""

from __future__ import annotations

from typing import Callable

from distillcli.errors import TargetUnreachable


def search_ratio(reduction: Callable[[float], float], target: float, high: float,
                 tolerance: float = 1e-3, max_iter: int = 30) -> float:
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
