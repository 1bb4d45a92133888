"""Before the choice on latency: the fastest candidates timed again, side by side.

Each trial timed its model beside the starting model inside its own run, minutes away from the
other trials; on a shared machine, load shifts those ratios by more than the gaps between the best
few. The ``RETIME_TOP`` fastest feasible candidates are timed again here, in one process, in
rounds with the starting model (start, a, b, c, start, a ...), and the choice among them follows
these timings."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from distillcli.auto.study import Candidate

RETIME_TOP = 3


def retime(start: Path, files: Sequence[Path], batch: int, device: str, repeats: int,
           channels_last: bool) -> list[float]:
    """Each file's latency at ``batch`` over the starting model's, all timed in alternation."""
    from distillcli.measure import alternated_latency
    from distillcli.modelfile import load_model
    from distillcli.models.build import place
    from distillcli.runtime import resolve_device

    where = resolve_device(device)
    models = [load_model(path) for path in (start, *files)]  # placed as the trials' runs placed them
    modules = [place(m.handle.module, where, channels_last) if m.handle.format == "eager" else m.handle.module
               for m in models]
    timed = alternated_latency(modules, models[0].input_shape, batch, where, repeats, channels_last)
    return [median / timed[0][0] for median, _ in timed[1:]]


def fastest(candidates: Sequence[Candidate]) -> list[Candidate]:
    """The feasible finished candidates, the cheapest first (the more accurate first among equals)."""
    return sorted((c for c in candidates if c.state == "complete" and c.get("feasible") and c.twin is None),
                  key=lambda c: (c.get("cost_ratio"), -c.get("top1")))
