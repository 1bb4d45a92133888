"""Centroid fine-tuning (Deep Compression, sec. 3.2) as a Trainer hook.

The gradient of a shared value is the sum of the gradients of the weights that use it.
After backward each weight's gradient is replaced by its cluster's summed gradient, so the
optimiser moves every member of a cluster by the same step (momentum and weight decay act
element-wise on identical values, so members stay identical); after each step the weights
are reset to their cluster's mean, which removes any floating-point drift and keeps exactly
K values per layer. Pruned weights (code 0 of a pruned layer) get no gradient and stay zero.

``reduce="mean"`` averages instead of summing: the same direction with a step that does not
grow with the cluster's size (large layers need a much smaller lr with "sum").
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from distillcli.compress.choices import Reduce
from distillcli.compress.sharing.kmeans import ZERO_CODE, SharedLayer


def _cluster_sums(values: Tensor, layer: SharedLayer) -> Tensor:
    sums = torch.zeros(layer.clusters, dtype=values.dtype, device=values.device)
    return sums.index_add_(0, layer.codes.reshape(-1), values.reshape(-1))


class CentroidTuning:
    """Keeps ``layers`` shared while the Trainer fine-tunes their centroids."""

    def __init__(self, model: nn.Module, layers: dict[str, SharedLayer], reduce: Reduce = "sum") -> None:
        self.reduce = reduce
        self.weights: dict[str, nn.Parameter] = {n: model.get_submodule(n).weight for n in layers}
        self.layers = layers
        for name, layer in layers.items():
            device = self.weights[name].device
            layer.codes = layer.codes.to(device)
            layer.centroids = layer.centroids.to(device)
        self.members = {n: torch.bincount(l.codes.reshape(-1), minlength=l.clusters).float()
                        for n, l in layers.items()}

    def state_dict(self) -> dict[str, Tensor]:
        """The centroids (the codes are fixed by the clustering, which resuming repeats)."""
        return {name: layer.centroids.detach().to("cpu", copy=True) for name, layer in self.layers.items()}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        for name, centroids in state.items():
            self.layers[name].centroids = centroids.to(self.weights[name].device)

    @torch.no_grad()
    def after_backward(self, model: nn.Module) -> None:
        for name, layer in self.layers.items():
            grad = self.weights[name].grad
            if grad is None:
                continue
            per_cluster = _cluster_sums(grad, layer)
            if self.reduce == "mean":
                per_cluster /= self.members[name].clamp(min=1)
            if layer.pruned:
                per_cluster[ZERO_CODE] = 0
            grad.copy_(per_cluster[layer.codes])

    @torch.no_grad()
    def after_step(self, model: nn.Module, step: int) -> None:
        for name, layer in self.layers.items():
            weight = self.weights[name]
            members = self.members[name]
            centroids = torch.where(members > 0, _cluster_sums(weight.detach(), layer) / members.clamp(min=1),
                                    layer.centroids)
            if layer.pruned:
                centroids[ZERO_CODE] = 0
            layer.centroids = centroids
            weight.copy_(layer.weight())
