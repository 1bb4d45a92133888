"""BatchNorm recalibration after pruning."""

from __future__ import annotations

import torch
from torch import nn

from distillcli.compress.pruning import recalibrate_batchnorm


def test_statistics_become_the_batch_average_and_momentum_is_kept() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4, momentum=0.3)).eval()
    bn = model[1]
    bn.running_mean.fill_(5.0)
    batches = [(torch.randn(8, 3, 6, 6) * 2 + 1, torch.zeros(8), torch.zeros(8)) for _ in range(3)]
    assert recalibrate_batchnorm(model, batches, limit=2) == 2
    with torch.no_grad():
        outs = [model[0](x) for x, _, _ in batches[:2]]
    expected = torch.stack([o.mean((0, 2, 3)) for o in outs]).mean(0)
    torch.testing.assert_close(bn.running_mean, expected)
    assert bn.momentum == 0.3 and not model.training and int(bn.num_batches_tracked) == 2


def test_no_batches_leaves_the_model_alone() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    model[1].running_mean.fill_(5.0)
    assert recalibrate_batchnorm(model, [], limit=10) == 0
    assert recalibrate_batchnorm(model, [(torch.randn(2, 3, 6, 6), None, None)], limit=0) == 0
    assert torch.all(model[1].running_mean == 5.0)
