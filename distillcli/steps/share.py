"""Weight sharing, the second stage of Deep Compression (Han et al. 2016): per-layer k-means
to K shared values, centroid fine-tuning, and the stored size with pruning + sharing +
Huffman coding. Zeros left by an earlier (unstructured) prune step stay zero and are stored
sparse, so `prune -> share` is the paper's pipeline. The model stays an ordinary float model
whose layers hold K distinct values; the report gives the size it would be stored in."""

from __future__ import annotations

import copy
from typing import Any

from pydantic import Field

from distillcli.compress.quantization import resolve_skip
from distillcli.compress.sharing import CentroidTuning, Reduce, model_size, share_model
from distillcli.losses import KDOptions, make_objective
from distillcli.models.handle import ModelHandle
from distillcli.steps.base import StepConfig, StepContext, StepOutput, prepare, require_eager, step
from distillcli.record import EpochRecord
from distillcli.training.optim import OptimConfig


class ShareConfig(StepConfig, OptimConfig, KDOptions):
    clusters: int = Field(16, ge=2, le=256, description="shared values per Conv2d layer (16: 4-bit codes); "
                                                        "a pruned layer's zero is one of them")
    linear_clusters: int | None = Field(None, ge=2, le=256, description="shared values per Linear layer "
                                                                        "(default: clusters)")
    skip: list[str] = Field(default_factory=list, max_length=10_000, description="layers (wildcards on module "
                                                                                  "names) left unshared")
    iterations: int = Field(30, ge=1, le=10_000, description="k-means iterations at most")
    epochs: int = Field(1, ge=0, le=100_000, description="centroid fine-tune epochs (0: cluster only)")
    lr: float = Field(0.0001, gt=0, le=1e12, description="peak learning rate of the centroid fine-tune")
    centroid_grad: Reduce = Field("sum", description="sum: a centroid's gradient is the sum over its weights "
                                                     "(the paper); mean: their average (steps independent of "
                                                     "cluster size)")
    distill: bool = Field(True, description="fine-tune by distilling from the model as it was before sharing")


@step("share", ShareConfig)
def share(model: ModelHandle, ctx: StepContext, cfg: ShareConfig) -> StepOutput:
    """Share weights (k-means per layer), fine-tune the centroids, report the Deep Compression size."""
    require_eager(model, "share")
    module = prepare(model.module, ctx)
    reference = copy.deepcopy(module).eval() if cfg.epochs and cfg.distill else None
    layers = share_model(module, cfg.clusters, cfg.linear_clusters, resolve_skip(module, cfg.skip), cfg.iterations)
    curve: list[EpochRecord] = []
    if cfg.epochs:
        logits = ctx.teacher_logits(reference, cfg) if reference is not None else None
        objective = make_objective("kd" if reference is not None else "ce", reference, cfg, cfg.label_smoothing,
                                   logits=logits)
        hook = CentroidTuning(module, layers, cfg.centroid_grad)
        curve = ctx.fit(module, objective, cfg, [hook], title="share")
    size = model_size(module, layers)
    info: dict[str, Any] = {"clusters": cfg.clusters, "linear_clusters": cfg.linear_clusters or cfg.clusters,
                            "shared_layers": len(layers), **size.summary(), "size_layers": size.rows()}
    facts = {**model.info, "shared": {k: info[k] for k in ("clusters", "linear_clusters", "shared_layers")}}
    return StepOutput(ModelHandle(module, model.arch, model.kind, facts), curve, info)
