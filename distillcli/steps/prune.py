"""Pruning: remove channels (a smaller, faster model) or zero weights (a sparser one).

The amount is a sparsity or, for channel pruning, a wanted MAC reduction found by searching
the ratio. Pruning is one-shot, iterative (K prune + fine-tune rounds) or, for unstructured
pruning, gradual over the fine-tune (AGP). The fine-tune distils from a frozen copy of the
model as it was before pruning, so a pruned trained model recovers without a recipe teacher.
"""

from __future__ import annotations

import copy
from typing import Annotated, Any, Literal, Sequence

from pydantic import Field, PositiveInt, field_validator, model_validator
from torch import nn

from distillcli.compress.pruning import (
    UNSTRUCTURED_NOTE, AgpSchedule, ChannelPruner, ImportanceName, MagnitudePruner, accumulate_gradients,
    dense_bytes, iterative_fractions, recalibrate_batchnorm, search_ratio, sparse_bytes,
)
from distillcli.compress.pruning.importance import needs_gradients
from distillcli.errors import CompressionError
from distillcli.losses import KDOptions, make_objective
from distillcli.measure import count_macs, count_params, evaluate, latency_ms
from distillcli.models.handle import ModelHandle
from distillcli.record import EpochRecord
from distillcli.runtime import resolve_round_to
from distillcli.steps.base import StepConfig, StepContext, StepOutput, prepare, require_eager, step
from distillcli.training.optim import OptimConfig

LATENCY_BATCHES = (1, 64)


class FinetuneConfig(OptimConfig, KDOptions):
    epochs: int = Field(0, ge=0, le=100_000, description="fine-tune epochs after pruning (after each round "
                                                         "when iterative); 0: no fine-tune")
    lr: float = Field(0.01, gt=0, le=1e12, description="peak learning rate (lower than from-scratch training)")
    distill: bool = Field(True, description="distil from a frozen copy of the model as it was before pruning; "
                                            "false: cross-entropy on the labels only")


class PruneConfig(StepConfig):
    method: Literal["channel", "unstructured"] = Field(
        "channel", description="channel: remove whole channels/filters (smaller and faster); "
                               "unstructured: zero single weights (sparser, not faster on dense hardware)")
    sparsity: float | None = Field(None, gt=0, lt=1, description="fraction of the weights removed: channel: of all "
                                   "parameters (the channel ratio is searched); unstructured: of conv/linear weights")
    channel_ratio: float | None = Field(None, gt=0, lt=1, description="channel: fraction of every layer's channels "
                                        "removed (removes about 1 - (1 - r)^2 of the weights)")
    target_mac_reduction: float | None = Field(None, gt=1, le=1000, description="channel: prune until the model "
                                               "needs this many times fewer MACs (the ratio is searched)")
    importance: ImportanceName = Field("l1", description="channel score: l1 | l2 (weight norms), bn_scale "
                                                         "(BatchNorm |gamma|), taylor (|weight x gradient|)")
    scope: Literal["layer", "global"] = Field("layer", description="layer: the same ratio in every layer; "
                                                                   "global: rank all layers together")
    max_layer_ratio: float = Field(0.9, gt=0, lt=1, description="global scope / ratio search: at most this "
                                                                "fraction of any layer is removed")
    overrides: dict[str, float] = Field(default_factory=dict, max_length=10_000, description="per-layer ratios "
                                        "by module-name wildcard, e.g. {'net.layer3.*': 0.3}; 0 keeps the layer whole")
    ignore: list[str] = Field(default_factory=list, max_length=10_000, description="layers (wildcards) never "
                              "pruned; 'stem' is the first convolution; the classifier's outputs are always kept")
    round_to: Annotated[int, Field(ge=1, le=4096)] | Literal["auto"] | None = Field(
        "auto", description="channel: keep channel counts a multiple of this; auto: the device's fast multiple "
                            "(8 on CPU and CUDA, measured: README 'Speed of the training loop'); null or 1: no rounding")
    schedule: Literal["oneshot", "iterative", "gradual"] = Field(
        "oneshot", description="oneshot; iterative: `iterations` prune + fine-tune rounds; gradual (unstructured): "
                               "AGP cubic ramp during the fine-tune")
    iterations: PositiveInt = Field(3, le=100, description="iterative: number of prune + fine-tune rounds")
    frequency: PositiveInt = Field(100, le=10_000_000, description="gradual: optimiser steps between sparsity updates")
    initial_sparsity: float = Field(0.0, ge=0, lt=1, description="gradual: sparsity at the start of the ramp")
    ramp: float = Field(0.75, gt=0, le=1, description="gradual: fraction of the fine-tune over which sparsity rises")
    importance_batches: PositiveInt = Field(8, le=100_000, description="taylor: training batches whose gradients "
                                                                       "score channels")
    recalibrate_bn: int = Field(20, ge=0, le=100_000, description="training batches used to re-estimate BatchNorm "
                                                                   "statistics after each pruning round (0: keep the "
                                                                   "old ones)")
    latency: bool = Field(True, description="measure latency before and after (for the speedup in the report)")
    finetune: FinetuneConfig = Field(default_factory=FinetuneConfig)

    @field_validator("round_to", mode="before")
    @classmethod
    def _round_to(cls, value: Any) -> Any:
        """One message for every bad value (pydantic would list one per member of the union)."""
        if value is None or value == "auto":
            return value
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 4096:
            return value
        raise ValueError(f"must be a whole number from 1 to 4096, auto or null (got {value!r})")

    @model_validator(mode="after")
    def _check(self) -> "PruneConfig":
        if [self.sparsity, self.channel_ratio, self.target_mac_reduction].count(None) != 2:
            raise ValueError("give exactly one of sparsity (e.g. 0.5), channel_ratio (e.g. 0.3) and "
                             "target_mac_reduction (e.g. 2.0)")
        bad = {k: v for k, v in self.overrides.items() if not 0 <= v < 1}
        if bad:
            raise ValueError(f"override ratios must be in [0, 1): {bad}")
        if self.method == "unstructured":
            if self.target_mac_reduction is not None or self.channel_ratio is not None:
                raise ValueError("unstructured pruning zeroes single weights; give sparsity, or use method: channel")
            if self.importance not in ("l1", "l2"):
                raise ValueError("unstructured pruning ranks single weights by magnitude; importance must be l1 or l2")
            if isinstance(self.round_to, int):
                raise ValueError("round_to applies to channel pruning only")
        if self.schedule == "gradual":
            if self.method != "unstructured":
                raise ValueError("schedule gradual is for method: unstructured; use schedule: iterative for channels")
            if self.finetune.epochs == 0:
                raise ValueError("schedule gradual prunes during the fine-tune: set finetune.epochs >= 1")
            if self.sparsity is not None and self.initial_sparsity >= self.sparsity:
                raise ValueError("initial_sparsity must be below sparsity")
        return self


@step("prune", PruneConfig)
def prune(model: ModelHandle, ctx: StepContext, cfg: PruneConfig) -> StepOutput:
    """Prune channels (faster) or weights (sparser), then optionally fine-tune with KD from the unpruned model."""
    require_eager(model, "prune")
    module = prepare(model.module, ctx)
    # The fine-tune's teacher: the model as it is now (KnowledgeDistillation freezes it).
    teacher = copy.deepcopy(module) if cfg.finetune.epochs and cfg.finetune.distill else None
    # Channel pruning leaves `module` as it was; unstructured pruning edits it in place.
    reference = copy.deepcopy(module) if cfg.method == "unstructured" and cfg.latency else module
    costs = {"params_before": count_params(module), "macs_before": count_macs(module, ctx.data.input_shape, ctx.device)}
    run = _channel if cfg.method == "channel" else _unstructured
    pruned, curve, facts = run(module, ctx, cfg, teacher)
    costs.update(params_after=count_params(pruned), macs_after=count_macs(pruned, ctx.data.input_shape, ctx.device))
    if costs["macs_before"] and costs["macs_after"]:
        costs["mac_reduction"] = costs["macs_before"] / costs["macs_after"]
    if cfg.latency:
        costs.update(_speedup(reference, pruned, ctx))
    info = {"method": cfg.method, "schedule": cfg.schedule, **facts, **costs}
    if cfg.method == "channel":
        info["sparsity"] = 1 - costs["params_after"] / max(1, costs["params_before"])  # of all the weights
    summary = {k: info[k] for k in ("method", "sparsity", "mac_reduction") if k in info}
    return StepOutput(ModelHandle(pruned, model.arch, model.kind, {**model.info, "pruning": summary}), curve, info)


# ---------------------------------------------------------------- channel
def _channel(module: nn.Module, ctx: StepContext, cfg: PruneConfig,
             teacher: nn.Module | None) -> tuple[nn.Module, list[EpochRecord], dict[str, Any]]:
    rounds = iterative_fractions(cfg.iterations if cfg.schedule == "iterative" else 1)
    current, curve, ratios, top1_pruned, base = module, [], [], None, 0
    original: dict[str, int] = {}  # channels per group, before the first round and after the last
    final: dict[str, int] = {}
    round_to = resolve_round_to(cfg.round_to, ctx.device)
    options = dict(scope=cfg.scope, overrides=cfg.overrides, round_to=round_to, max_ratio=cfg.max_layer_ratio)
    for k, fraction in enumerate(rounds):
        if needs_gradients(cfg.importance):
            accumulate_gradients(current, ctx.data.train, cfg.importance_batches)
        pruner = ChannelPruner(current, ctx.data.input_shape, cfg.importance, cfg.ignore)
        current.zero_grad(set_to_none=True)
        if cfg.channel_ratio is not None:
            # Each round removes its share of the *original* channels: cumulative 1 - r * fraction kept.
            done = cfg.channel_ratio * (rounds[k - 1] if k else 0.0)
            ratio = 1 - (1 - cfg.channel_ratio * fraction) / (1 - done)
        else:
            # Each round aims at base / target**fraction MACs (or parameters), measured from the current model.
            count = pruner.macs if cfg.target_mac_reduction is not None else pruner.params
            target = cfg.target_mac_reduction or 1 / (1 - (cfg.sparsity or 0.0))
            now = count({})
            if not now:
                raise CompressionError("cannot count the model's MACs, so a MAC target cannot be searched",
                                       "give sparsity or channel_ratio instead of target_mac_reduction")
            base = base or now
            goal = now * target ** fraction / base

            def reduction(r: float) -> float:
                return now / max(1, count(pruner.plan(r, **options)))

            ratio = search_ratio(reduction, goal, cfg.max_layer_ratio) if goal > 1 else 0.0
        ratios.append(ratio)
        plan = pruner.plan(ratio, **options)
        for name, (before, after) in pruner.channel_counts(plan).items():
            original.setdefault(name, before)
            final[name] = after
        current = prepare(pruner.apply(plan), ctx)
        recalibrate_batchnorm(current, ctx.data.train, cfg.recalibrate_bn)
        if cfg.finetune.epochs:
            top1_pruned = evaluate(current, ctx.data.val, ctx.data.num_classes)["top1"]
            curve += _finetune(current, ctx, cfg, teacher, (), _title(k, len(rounds)))
    facts: dict[str, Any] = {"importance": cfg.importance, "scope": cfg.scope, "round_to": round_to,
                             "ratio": ratios[-1], "ratios": ratios,
                             "target_mac_reduction": cfg.target_mac_reduction,
                             "channels_removed": 1 - sum(final.values()) / max(1, sum(original.values())),
                             "channels": {name: [n, final[name]] for name, n in original.items()}}
    if top1_pruned is not None:
        facts["top1_before_finetune"] = top1_pruned
    return current, curve, facts


# ---------------------------------------------------------------- unstructured
def _unstructured(module: nn.Module, ctx: StepContext, cfg: PruneConfig,
                  teacher: nn.Module | None) -> tuple[nn.Module, list[EpochRecord], dict[str, Any]]:
    sparsity = cfg.sparsity or 0.0  # PruneConfig requires it for this method
    pruner = MagnitudePruner(module, sparsity, cfg.scope, cfg.ignore, cfg.overrides)
    curve: list[EpochRecord] = []
    if cfg.schedule == "gradual":
        steps = cfg.finetune.epochs * max(1, len(ctx.data.train))
        pruner.schedule = AgpSchedule.over(sparsity, cfg.initial_sparsity, steps, cfg.ramp, cfg.frequency)
        pruner.prune_to(pruner.schedule.sparsity(0))
        curve = _finetune(module, ctx, cfg, teacher, [pruner], "prune finetune (gradual)")
    else:
        rounds = iterative_fractions(cfg.iterations if cfg.schedule == "iterative" else 1)
        for k, fraction in enumerate(rounds):
            pruner.prune_to(sparsity * fraction)
            recalibrate_batchnorm(module, ctx.data.train, cfg.recalibrate_bn)
            if cfg.finetune.epochs:
                curve += _finetune(module, ctx, cfg, teacher, [pruner], _title(k, len(rounds)))
    facts = {"scope": cfg.scope, "sparsity": pruner.sparsity(), "sparse_bytes": sparse_bytes(module, pruner.weights),
             "dense_bytes": dense_bytes(module), "note": UNSTRUCTURED_NOTE}
    return module, curve, facts


# ---------------------------------------------------------------- shared
def _title(round_index: int, rounds: int) -> str:
    return f"prune finetune {round_index + 1}/{rounds}" if rounds > 1 else "prune finetune"


def _finetune(module: nn.Module, ctx: StepContext, cfg: PruneConfig, teacher: nn.Module | None,
              hooks: Sequence[Any], title: str) -> list[EpochRecord]:
    ft = cfg.finetune
    objective = make_objective("kd" if teacher is not None else "ce", teacher, ft, ft.label_smoothing)
    return ctx.fit(module, objective, ft, hooks, title)


def _speedup(before: nn.Module, after: nn.Module, ctx: StepContext, rounds: int = 3) -> dict[str, Any]:
    """Latency of both models at batch 1 and 64, measured in alternation (best of ``rounds``
    medians each) so that load on a shared machine hits both alike."""
    out: dict[str, Any] = {"latency_ms_before": {}, "latency_ms_after": {}}
    for b in LATENCY_BATCHES:
        times: dict[str, list[float]] = {"before": [], "after": []}
        for _ in range(rounds):
            for key, module in (("before", before), ("after", after)):
                times[key].append(latency_ms(module, ctx.data.input_shape, b, ctx.device, channels_last=ctx.channels_last))
        out["latency_ms_before"][str(b)], out["latency_ms_after"][str(b)] = min(times["before"]), min(times["after"])
        out[f"speedup_b{b}"] = min(times["before"]) / min(times["after"])
    return out
