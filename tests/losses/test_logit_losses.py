"""DKD and DIST against hand computations on tiny tensors; the DKD identity with classical KD."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from distillcli.losses.dist import dist_loss
from distillcli.losses.dkd import DecoupledKD, DKDOptions, decoupled_kl
from distillcli.losses.terms import Outputs, TermContext


def _ctx(temperature: float = 4.0) -> TermContext:
    return TermContext(None, temperature, 0.9, 0.0, probe=lambda s, t: ({}, {}), stages=lambda: ([], []))


def _softmax(row: list[float], t: float) -> list[float]:
    e = [math.exp(v / t) for v in row]
    return [v / sum(e) for v in e]


def test_kd_splits_into_tckd_plus_weighted_nckd():
    """KL(p_t || p_s) = TCKD + (1 - p_t[target]) * NCKD, per sample (Zhao et al. 2022, eq. 4)."""
    torch.manual_seed(0)
    s, t, y, T = torch.randn(6, 5) * 3, torch.randn(6, 5) * 3, torch.randint(0, 5, (6,)), 4.0
    tckd, nckd = decoupled_kl(s, t, y, T)
    kl = F.kl_div(F.log_softmax(s / T, 1), F.log_softmax(t / T, 1), reduction="none", log_target=True).sum(1)
    p_target = F.softmax(t / T, 1).gather(1, y.view(-1, 1)).squeeze(1)
    assert torch.allclose(kl, tckd + (1 - p_target) * nckd, atol=1e-6)


def test_dkd_matches_hand_computation_and_warms_up():
    s, t, y, T = [1.0, 2.0, 0.5], [2.0, 0.0, 1.0], 1, 2.0
    ps, pt = _softmax(s, T), _softmax(t, T)
    tckd = pt[y] * math.log(pt[y] / ps[y]) + (1 - pt[y]) * math.log((1 - pt[y]) / (1 - ps[y]))
    rest = [i for i in range(3) if i != y]
    qs = [ps[i] / (1 - ps[y]) for i in rest]
    qt = [pt[i] / (1 - pt[y]) for i in rest]
    nckd = sum(a * math.log(a / b) for a, b in zip(qt, qs))
    term = DecoupledKD(DKDOptions(alpha=1.0, beta=8.0, temperature=T, warmup_epochs=20), _ctx())
    out = Outputs(torch.tensor([s]), torch.tensor([t]), torch.tensor([y]))
    full = T * T * (tckd + 8 * nckd)
    assert abs(term(out).item() - full / 20) < 1e-5  # epoch 0: 1/20 of the weight
    term.set_epoch(9)
    assert abs(term(out).item() - full / 2) < 1e-5
    term.set_epoch(50)
    assert abs(term(out).item() - full) < 1e-5


def test_dkd_gradient_is_finite():
    s = torch.randn(4, 10, requires_grad=True)
    term = DecoupledKD(DKDOptions(), _ctx())
    term(Outputs(s, torch.randn(4, 10), torch.randint(0, 10, (4,)))).backward()
    assert torch.isfinite(s.grad).all()


def test_dist_matches_hand_computation():
    s = [[1.0, 2.0, 0.5], [0.2, -1.0, 3.0]]
    t = [[2.0, 0.0, 1.0], [1.0, 0.5, -1.0]]
    T, beta, gamma = 4.0, 2.0, 3.0
    ps, pt = [_softmax(r, T) for r in s], [_softmax(r, T) for r in t]

    def rho(a: list[float], b: list[float]) -> float:
        ma, mb = sum(a) / len(a), sum(b) / len(b)
        num = sum((x - ma) * (z - mb) for x, z in zip(a, b))
        return num / math.sqrt(sum((x - ma) ** 2 for x in a) * sum((z - mb) ** 2 for z in b))

    inter = 1 - sum(rho(a, b) for a, b in zip(ps, pt)) / 2
    cols = lambda m: [list(c) for c in zip(*m)]  # noqa: E731
    intra = 1 - sum(rho(a, b) for a, b in zip(cols(ps), cols(pt))) / 3
    expected = T * T * (beta * inter + gamma * intra)
    assert abs(dist_loss(torch.tensor(s), torch.tensor(t), T, beta, gamma).item() - expected) < 1e-5 * expected


def test_dist_is_zero_for_a_shifted_copy_of_the_teacher():
    t = torch.randn(8, 5)
    assert dist_loss(t + 3.0, t, 1.0, 1.0, 1.0).abs().item() < 1e-5
