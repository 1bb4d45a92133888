"""Weight sharing: k-means leaves exactly K values per layer, keeps pruned zeros, and centroid
fine-tuning (gradients summed per cluster) keeps the layers shared."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from distillcli.compress.pruning import MagnitudePruner
from distillcli.compress.sharing import CentroidTuning, kmeans_1d, share_model, share_weight
from distillcli.compress.sharing.kmeans import SharedLayer
from distillcli.losses import make_objective
from distillcli.models.build import build_model
from distillcli.models.handle import ArchSpec
from distillcli.training.optim import OptimConfig
from distillcli.training.trainer import Trainer
from tests.conftest import tiny_synthetic


def test_linear_initialisation_and_lloyd() -> None:
    values = torch.tensor([0.0, 0.1, 0.2, 0.9, 1.0, 5.0])
    centroids, assign = kmeans_1d(values, 3, iterations=0)
    # evenly spaced start (0, 2.5, 5), each then moved to its members' mean; the middle one has none
    assert torch.allclose(centroids, torch.tensor([0.44, 2.5, 5.0]))
    centroids, assign = kmeans_1d(values, 3)  # Lloyd re-seeds the empty cluster
    assert torch.allclose(centroids, torch.tensor([0.1, 0.95, 5.0]))
    assert assign.tolist() == [0, 0, 0, 1, 1, 2]


def test_exactly_k_values_per_layer() -> None:
    torch.manual_seed(0)
    weight = torch.randn(32, 16, 3, 3)
    layer = share_weight(weight, 16)
    assert not layer.pruned and layer.clusters == 16
    assert layer.weight().unique().numel() == 16
    assert (layer.weight() - weight).abs().max() < (weight.max() - weight.min()) / 16


def test_pruned_zeros_stay_and_count_as_one_value() -> None:
    torch.manual_seed(0)
    weight = torch.randn(32, 16, 3, 3)
    weight[weight.abs() < 0.7] = 0  # ~52 % pruned
    layer = share_weight(weight, 16)
    shared = layer.weight()
    assert layer.pruned and layer.centroids[0] == 0
    assert torch.equal(shared == 0, weight == 0)
    assert shared.unique().numel() == 16


@pytest.fixture(scope="module")
def data():
    return tiny_synthetic()


def test_centroid_finetuning_keeps_layers_shared(data) -> None:
    torch.manual_seed(0)
    model = build_model(ArchSpec("cnn", 4, 3, data.mean, data.std, {"width": 8}))
    MagnitudePruner(model, 0.5).prune_to(0.5)  # the pruning engineer's masks: Deep Compression's stage 1
    zeros = {n: m.weight == 0 for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))}
    layers = share_model(model, clusters=8)
    before = {n: l.centroids.clone() for n, l in layers.items()}
    Trainer(model, make_objective("ce"), data, OptimConfig(epochs=1, lr=0.01), hooks=[CentroidTuning(model, layers)]).fit()
    for name, layer in layers.items():
        weight = model.get_submodule(name).weight
        assert weight.unique().numel() == 8, name
        assert torch.equal(weight == 0, zeros[name]), name
        assert torch.equal(weight, layer.weight()), name
        assert not torch.equal(layer.centroids, before[name]), name  # the centroids did learn


def test_gradient_of_a_centroid_is_the_sum_over_its_cluster() -> None:
    linear = nn.Linear(4, 1, bias=False)
    with torch.no_grad():
        linear.weight.copy_(torch.tensor([[0.0, 0.5, 0.5, -1.0]]))
    layers = {"": SharedLayer(torch.tensor([0.0, 0.5, -1.0]), torch.tensor([[0, 1, 1, 2]]), True, "linear")}
    hook = CentroidTuning(linear, layers)
    linear.weight.grad = torch.tensor([[7.0, 1.0, 2.0, 3.0]])
    hook.after_backward(linear)
    assert linear.weight.grad.tolist() == [[0.0, 3.0, 3.0, 3.0]]  # pruned: none; cluster 1: 1 + 2
    mean = CentroidTuning(linear, copy.deepcopy(layers), reduce="mean")
    linear.weight.grad = torch.tensor([[7.0, 1.0, 2.0, 3.0]])
    mean.after_backward(linear)
    assert linear.weight.grad.tolist() == [[0.0, 1.5, 1.5, 3.0]]


def test_skip_and_linear_clusters() -> None:
    torch.manual_seed(0)
    model = build_model(ArchSpec("cnn", 4, 3, [0.5] * 3, [0.5] * 3, {"width": 8}))
    first = model.get_submodule("net.stages.0.0").weight.clone()
    layers = share_model(model, clusters=16, linear_clusters=4, skip=["net.stages.0"])
    assert "net.stages.0.0" not in layers and torch.equal(model.get_submodule("net.stages.0.0").weight, first)
    assert layers["net.classifier"].clusters == 4 and layers["net.stages.1.0"].clusters == 16
