"""Per-layer weight sharing by 1-D k-means (Han, Mao, Dally 2016, "Deep Compression", sec. 3).

Each Conv / Linear weight tensor is replaced by K shared values and a K-way index per
weight. Centroids start evenly spaced between the layer's smallest and largest weight
(linear initialisation: the paper found it keeps the rare large weights, which matter most,
better than random or density-based starts), then Lloyd iterations refine them. In a pruned
layer (one with zeros) the zero is one of the K values: the other K - 1 cluster the
non-zero weights, and pruned weights keep code 0 for good.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

ZERO_CODE = 0


@dataclass
class SharedLayer:
    """One layer's codebook and codes: ``weight == centroids[codes]``."""

    centroids: Tensor  # (K,) float32; centroids[0] == 0 when the layer is pruned
    codes: Tensor  # int64, the weight's shape (logical order)
    pruned: bool
    kind: str  # "conv" | "linear" (the sparse format's index width depends on it)

    @property
    def clusters(self) -> int:
        return self.centroids.numel()

    def weight(self) -> Tensor:
        return self.centroids[self.codes]


def kmeans_1d(values: Tensor, k: int, iterations: int = 30) -> tuple[Tensor, Tensor]:
    """(centroids (k,) ascending, cluster of each value) by Lloyd's algorithm from a linear
    initialisation. A cluster that empties is re-seeded at the value farthest from its
    centroid, so there are k distinct shared values whenever the values allow it."""
    values = values.double()
    centroids = torch.linspace(float(values.min()), float(values.max()), k, dtype=torch.float64)
    assign = torch.full_like(values, -1, dtype=torch.int64)
    for _ in range(iterations):
        new = torch.bucketize(values, (centroids[1:] + centroids[:-1]) / 2)  # nearest, centroids sorted
        if torch.equal(new, assign):
            break
        assign = new
        counts = torch.bincount(assign, minlength=k)
        centroids = torch.zeros(k, dtype=torch.float64).index_add_(0, assign, values) / counts.clamp(min=1)
        for empty in torch.nonzero(counts == 0).reshape(-1).tolist():
            error = (values - centroids[assign]).abs()
            error[torch.isin(values, centroids)] = -1  # never seed on an existing centroid
            centroids[empty] = values[error.argmax()]
        centroids = centroids.sort().values
    # a last assignment and update, so that codes and centroids agree
    assign = torch.bucketize(values, (centroids[1:] + centroids[:-1]) / 2)
    counts = torch.bincount(assign, minlength=k)
    sums = torch.zeros(k, dtype=torch.float64).index_add_(0, assign, values)
    return torch.where(counts > 0, sums / counts.clamp(min=1), centroids).float(), assign


@torch.no_grad()
def share_weight(weight: Tensor, clusters: int, iterations: int = 30, kind: str = "conv") -> SharedLayer:
    """Cluster one weight tensor; the tensor itself is not changed."""
    flat = weight.detach().float().cpu().reshape(-1)
    nonzero = flat != 0
    pruned = bool((~nonzero).any())
    codes = torch.zeros_like(flat, dtype=torch.int64)
    if not nonzero.any():  # fully pruned: the zero is the only value
        return SharedLayer(torch.zeros(1), codes.view(weight.shape), True, kind)
    if pruned:
        centroids, assign = kmeans_1d(flat[nonzero], clusters - 1, iterations)
        centroids = torch.cat([torch.zeros(1), centroids])
        codes[nonzero] = assign + 1
    else:
        centroids, codes = kmeans_1d(flat, clusters, iterations)
    return SharedLayer(centroids, codes.view(weight.shape), pruned, kind)


def shareable_layers(model: nn.Module) -> dict[str, nn.Module]:
    return {n: m for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))}


@torch.no_grad()
def share_model(model: nn.Module, clusters: int, linear_clusters: int | None = None, skip: list[str] | None = None,
                iterations: int = 30) -> dict[str, SharedLayer]:
    """Cluster every Conv2d / Linear weight outside the ``skip`` modules (names; their children
    are skipped too) and write the shared values into the model; returns {name: SharedLayer}."""
    out: dict[str, SharedLayer] = {}
    for name, module in shareable_layers(model).items():
        if any(name == s or name.startswith(s + ".") for s in skip or []):
            continue
        is_linear = isinstance(module, nn.Linear)
        k = (linear_clusters or clusters) if is_linear else clusters
        layer = share_weight(module.weight, k, iterations, "linear" if is_linear else "conv")
        module.weight.copy_(layer.weight().to(module.weight.device))
        out[name] = layer
    return out
