"""The KD loss against a hand computation, and the T^2 gradient scale."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from distillcli.losses import KDOptions, make_objective
from distillcli.losses.kd import kd_loss


def test_matches_hand_computation():
    s = torch.tensor([[1.0, 2.0, 0.5], [0.2, -1.0, 3.0]])
    t = torch.tensor([[2.0, 0.0, 1.0], [1.0, 1.0, 1.0]])
    y = torch.tensor([1, 2])
    T, alpha = 3.0, 0.7
    soft = 0.0
    for i in range(2):
        p = [math.exp(v / T) for v in t[i].tolist()]
        q = [math.exp(v / T) for v in s[i].tolist()]
        p = [v / sum(p) for v in p]
        q = [v / sum(q) for v in q]
        soft += sum(pi * math.log(pi / qi) for pi, qi in zip(p, q))
    soft = soft / 2 * T * T
    hard = sum(-math.log(math.exp(s[i, y[i]].item()) / sum(math.exp(v) for v in s[i].tolist())) for i in range(2)) / 2
    expected = (1 - alpha) * hard + alpha * soft
    assert abs(kd_loss(s, t, y, T, alpha).item() - expected) < 1e-5


def test_soft_gradient_scale_is_independent_of_temperature():
    """Without T^2 the soft-target gradient shrinks like 1/T^2; with it, it stays O(1)."""
    torch.manual_seed(0)
    s0 = torch.randn(64, 10) * 0.1
    t = torch.randn(64, 10) * 0.1
    y = torch.randint(0, 10, (64,))
    norms = {}
    for T in (1.0, 10.0):
        s = s0.clone().requires_grad_(True)
        kd_loss(s, t, y, T, alpha=1.0).backward()
        norms[T] = s.grad.norm().item()
    # for small logits the soft gradient is (s - t) / (N T^2) * T^2 / K: the same at any T
    assert 0.8 < norms[10.0] / norms[1.0] < 1.25
    s = s0.clone().requires_grad_(True)
    (kd_loss(s, t, y, 10.0, alpha=1.0) / 100.0).backward()
    assert s.grad.norm().item() < norms[1.0] / 50


def test_alpha_zero_is_cross_entropy():
    s, t, y = torch.randn(8, 5), torch.randn(8, 5), torch.randint(0, 5, (8,))
    assert torch.allclose(kd_loss(s, t, y, 4.0, 0.0), F.cross_entropy(s, y))


def test_teacher_is_frozen_in_eval_mode_and_gets_no_gradient():
    teacher = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.BatchNorm1d(8), torch.nn.Linear(8, 3))
    student = torch.nn.Linear(4, 3)
    teacher.train()
    running = teacher[1].running_mean.clone()
    objective = make_objective("kd", teacher, KDOptions(temperature=2.0, alpha=0.5))
    loss, logits = objective(student, torch.randn(16, 4), torch.randint(0, 3, (16,)), torch.arange(16))
    loss.backward()
    assert not teacher.training
    assert torch.equal(teacher[1].running_mean, running)  # BN statistics did not drift
    assert all(p.grad is None for p in teacher.parameters())
    assert student.weight.grad is not None and logits.shape == (16, 3)
