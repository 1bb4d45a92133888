"""Learning-rate schedules: warm-up, cosine, multistep, stepped per batch."""

from __future__ import annotations

import math

import pytest

from distillcli.training.optim import OptimConfig, lr_factor


def test_cosine_with_warmup():
    cfg = OptimConfig(epochs=10, warmup_epochs=2, schedule="cosine")
    steps = 100  # per epoch
    assert lr_factor(cfg, 0, steps) == pytest.approx(0.01)
    assert lr_factor(cfg, 100, steps) == pytest.approx(0.01 + 0.99 * 0.5)
    assert lr_factor(cfg, 200, steps) == pytest.approx(1.0)
    assert lr_factor(cfg, 600, steps) == pytest.approx(0.5)  # half-way through the cosine part
    assert lr_factor(cfg, 999, steps) == pytest.approx(0.5 * (1 + math.cos(math.pi * 7.99 / 8)))


def test_multistep_default_and_explicit_milestones():
    cfg = OptimConfig(epochs=8, schedule="multistep", gamma=0.1)
    assert [round(lr_factor(cfg, e * 10, 10), 6) for e in range(8)] == [1, 1, 1, 1, 0.1, 0.1, 0.01, 0.01]
    cfg = OptimConfig(epochs=8, schedule="multistep", milestones=[2], gamma=0.5)
    assert lr_factor(cfg, 19, 10) == 1.0 and lr_factor(cfg, 20, 10) == 0.5


def test_inconsistent_schedules_are_rejected():
    with pytest.raises(ValueError, match="warmup_epochs"):
        OptimConfig(epochs=2, warmup_epochs=3)
    with pytest.raises(ValueError, match="milestones"):
        OptimConfig(epochs=2, schedule="multistep", milestones=[5])
