"""Unstructured magnitude pruning and the AGP schedule."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from distillcli.compress.pruning import AgpSchedule, MagnitudePruner, dense_bytes, sparse_bytes
from distillcli.data import load_data
from distillcli.data.config import DataConfig
from distillcli.errors import OptionError
from distillcli.losses import make_objective
from distillcli.models.build import build_model
from distillcli.models.handle import ArchSpec
from distillcli.training.optim import OptimConfig
from distillcli.training.trainer import Trainer


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: one thread is faster and immune to load


def make(name: str = "resnet8", **kwargs) -> nn.Module:
    torch.manual_seed(0)
    return build_model(ArchSpec(name, 4, 3, [0.5] * 3, [0.25] * 3, kwargs))


def zeros(w: torch.Tensor) -> int:
    return int((w == 0).sum())


@pytest.mark.parametrize("scope", ["layer", "global"])
def test_sparsity_is_exact_and_removes_the_smallest_weights(scope: str) -> None:
    model = make()
    pruner = MagnitudePruner(model, 0.5, scope)
    original = {n: w.detach().abs().clone() for n, w in pruner.weights.items()}
    pruner.prune_to(0.5)
    sets = [list(pruner.weights)] if scope == "global" else [[n] for n in pruner.weights]
    for names in sets:  # each ranked set: exactly round(s * n) zeros, all below every kept weight
        total = sum(original[n].numel() for n in names)
        assert sum(zeros(pruner.weights[n]) for n in names) == int(0.5 * total + 0.5)
        cut = torch.cat([original[n][pruner.masks[n] == 0] for n in names])
        kept = torch.cat([original[n][pruner.masks[n] == 1] for n in names])
        assert cut.max() <= kept.min()
    assert abs(pruner.sparsity() - 0.5) < 1e-3


def test_ignore_and_overrides() -> None:
    model = make()
    pruner = MagnitudePruner(model, 0.5, ignore=["stem", "net.linear"], overrides={"net.layer3.*": 0.8})
    pruner.prune_to(0.5)
    assert "net.conv1" not in pruner.weights and "net.linear" not in pruner.weights
    assert zeros(model.net.conv1.weight) == 0
    w = model.net.layer3[0].conv1.weight
    assert zeros(w) == int(0.8 * w.numel() + 0.5)
    with pytest.raises(OptionError, match="matches no"):
        MagnitudePruner(model, 0.5, ignore=["net.nope"])


def test_masks_survive_fine_tuning() -> None:
    model = make()
    data = load_data(DataConfig(name="synthetic", num_classes=4, image_size=16, train_size=64, val_size=16,
                                batch_size=16), device=torch.device("cpu"), seed=0, channels_last=False)
    pruner = MagnitudePruner(model, 0.6, "global")
    pruner.prune_to(0.6)
    masks = {n: m.clone() for n, m in pruner.masks.items()}
    Trainer(model, make_objective("ce"), data, OptimConfig(epochs=2, lr=0.1), hooks=[pruner]).fit()
    for name, w in pruner.weights.items():
        assert torch.all(w[masks[name] == 0] == 0), name
        assert torch.all(w[masks[name] == 1] != 0), name  # the kept weights did train
    assert abs(pruner.sparsity() - 0.6) < 1e-3


def test_gradual_pruning_follows_the_schedule_during_training() -> None:
    model = make()
    data = load_data(DataConfig(name="synthetic", num_classes=4, image_size=16, train_size=64, val_size=16,
                                batch_size=8), device=torch.device("cpu"), seed=0, channels_last=False)
    pruner = MagnitudePruner(model, 0.8)
    pruner.schedule = AgpSchedule(final=0.8, frequency=2, updates=4)  # ramps over steps 0..8 of 16
    seen: list[float] = []

    class Probe:
        def after_step(self, model: nn.Module, step: int) -> None:
            seen.append(pruner.sparsity())

    pruner.prune_to(pruner.schedule.sparsity(0))
    Trainer(model, make_objective("ce"), data, OptimConfig(epochs=2, lr=0.05), hooks=[pruner, Probe()]).fit()
    assert len(seen) == 16
    expected = [pruner.schedule.sparsity(step) for step in range(1, 17)]
    assert max(abs(a - b) for a, b in zip(seen, expected)) < 2e-3
    assert seen == sorted(seen) and abs(seen[-1] - 0.8) < 1e-3


def test_agp_values_match_the_formula() -> None:
    s_i, s_f, t0, dt, n = 0.1, 0.9, 10, 5, 4
    schedule = AgpSchedule(final=s_f, initial=s_i, start=t0, frequency=dt, updates=n)
    for t in range(0, 60):
        if t < t0:
            expected = s_i
        else:
            last = t0 + min((t - t0) // dt, n) * dt  # the last update at or before t
            expected = s_f + (s_i - s_f) * (1 - (last - t0) / (n * dt)) ** 3
        assert schedule.sparsity(t) == pytest.approx(expected), t
    assert [t for t in range(60) if schedule.is_update(t)] == [10, 15, 20, 25, 30]
    assert schedule.sparsity(30) == pytest.approx(s_f)


def test_agp_fits_short_fine_tunes() -> None:
    schedule = AgpSchedule.over(0.5, 0.0, total_steps=8, ramp=0.75, frequency=100)
    assert schedule.end <= 8 and schedule.sparsity(schedule.end) == pytest.approx(0.5)
    schedule = AgpSchedule.over(0.5, 0.0, total_steps=1000, ramp=0.5, frequency=100)
    assert (schedule.frequency, schedule.updates, schedule.end) == (100, 5, 500)


def test_sparse_size_counts_values_and_a_bitmap() -> None:
    model = make()
    pruner = MagnitudePruner(model, 0.75)
    pruner.prune_to(0.75)
    dense = dense_bytes(model)
    managed = sum(w.numel() for w in pruner.weights.values())
    nonzero = sum(int(torch.count_nonzero(w)) for w in pruner.weights.values())
    expected = dense - 4 * managed + 4 * nonzero + sum((w.numel() + 7) // 8 for w in pruner.weights.values())
    assert sparse_bytes(model, pruner.weights) == expected
    assert sparse_bytes(model, pruner.weights) < 0.4 * dense
