"""When to prune how much: gradual (AGP) and iterative schedules."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AgpSchedule:
    """Automated gradual pruning (Zhu & Gupta 2017, "To prune, or not to prune"):

        s_t = s_f + (s_i - s_f) * (1 - (t - t0) / (n * dt)) ** 3,  t in {t0, t0 + dt, ..., t0 + n * dt}

    Sparsity rises fast while the network has redundant weights, then slowly; it is updated
    every ``frequency`` (dt) optimiser steps from ``start`` (t0) over ``n * dt`` steps, and
    held at s_f afterwards.
    """

    final: float
    initial: float = 0.0
    start: int = 0
    frequency: int = 100
    updates: int = 1  # n

    @classmethod
    def over(cls, final: float, initial: float, total_steps: int, ramp: float, frequency: int) -> "AgpSchedule":
        """A schedule that ramps over the first ``ramp`` fraction of ``total_steps``; the step
        between updates shrinks to fit when the ramp is shorter than ``frequency``."""
        ramp_steps = max(1, int(total_steps * ramp))
        dt = min(frequency, ramp_steps)
        return cls(final, initial, 0, dt, max(1, ramp_steps // dt))

    @property
    def end(self) -> int:
        return self.start + self.updates * self.frequency

    def is_update(self, step: int) -> bool:
        return self.start <= step <= self.end and (step - self.start) % self.frequency == 0

    def sparsity(self, step: int) -> float:
        """s_t at optimiser step ``step`` (the value set by the last update at or before it)."""
        if step < self.start:
            return self.initial
        t = min(step, self.end) - self.start
        t -= t % self.frequency
        return self.final + (self.initial - self.final) * (1.0 - t / (self.updates * self.frequency)) ** 3


def iterative_fractions(iterations: int) -> list[float]:
    """Fraction of the final amount reached after each of ``iterations`` prune/fine-tune rounds."""
    return [(k + 1) / iterations for k in range(iterations)]
