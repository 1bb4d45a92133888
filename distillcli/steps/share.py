"""Weight sharing, the second stage of Deep Compression (Han et al. 2016): per-layer k-means
to K shared values, centroid fine-tuning, and the stored size with pruning + sharing +
Huffman coding. Zeros left by an earlier (unstructured) prune step stay zero and are stored
sparse, so `prune -> share` is the paper's pipeline. The model stays an ordinary float model
whose layers hold K distinct values; the report gives the size it would be stored in."""

from __future__ import annotations

from dataclasses import replace

from distillcli.compress.quantization import resolve_skip
from distillcli.compress.sharing import CentroidTuning, model_size, share_model
from distillcli.facts import ShareFacts, SharingSummary
from distillcli.models.handle import ModelHandle
from distillcli.steps.base import StepContext, StepOutput, prepare, reference_copy
from distillcli.steps.options import ShareConfig
from distillcli.record import EpochRecord


def share(model: ModelHandle, ctx: StepContext, cfg: ShareConfig) -> StepOutput:
    """Share weights (k-means per layer), fine-tune the centroids, report the Deep Compression size."""
    module = prepare(model.module, ctx)
    reference = reference_copy(module, cfg) if cfg.epochs else None
    layers = share_model(module, cfg.clusters, cfg.linear_clusters, resolve_skip(module, cfg.skip), cfg.iterations)
    curve: list[EpochRecord] = []
    if cfg.epochs:
        hook = CentroidTuning(module, layers, cfg.centroid_grad)
        curve = ctx.fit(module, ctx.self_distillation(reference, cfg), cfg, [hook], title="share")
    size = model_size(module, layers)
    shared = SharingSummary(clusters=cfg.clusters, linear_clusters=cfg.linear_clusters or cfg.clusters,
                            shared_layers=len(layers))
    info = ShareFacts(**shared.model_dump(), **size.summary(), size_layers=size.rows())
    return StepOutput(replace(model, module=module, info=model.info.model_copy(update={"shared": shared})), curve, info)
