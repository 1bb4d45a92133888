"""Pruning: remove channels (a smaller, faster model) or zero weights (a sparser one).

The amount is a sparsity or, for channel pruning, a wanted MAC reduction found by searching
the ratio. Pruning is one-shot, iterative (K prune + fine-tune rounds) or, for unstructured
pruning, gradual over the fine-tune (AGP). The fine-tune distils from a frozen copy of the
model as it was before pruning, so a pruned trained model recovers without a recipe teacher.
"""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any, Sequence

from torch import nn

from distillcli.compress.pruning import (
    UNSTRUCTURED_NOTE, AgpSchedule, ChannelPruner, MagnitudePruner, accumulate_gradients,
    dense_bytes, iterative_fractions, nearest_ratio, recalibrate_batchnorm, sparse_bytes,
)
from distillcli.compress.pruning.importance import needs_gradients
from distillcli.errors import CompressionError
from distillcli.facts import PruneFacts, PruningSummary
from distillcli.measure import count_macs, count_params, evaluate, latency_ms
from distillcli.models.handle import ModelHandle
from distillcli.record import EpochRecord
from distillcli.runtime import NARROWEST, auto_round_to
from distillcli.steps.base import StepContext, StepOutput, prepare, reference_copy
from distillcli.steps.options import PruneConfig

LATENCY_BATCHES = (1, 64)


def prune(model: ModelHandle, ctx: StepContext, cfg: PruneConfig) -> StepOutput:
    """Prune channels (faster) or weights (sparser), then optionally fine-tune with KD from the unpruned model."""
    module = prepare(model.module, ctx)
    teacher = reference_copy(module, cfg.finetune) if cfg.finetune.epochs else None
    # Channel pruning leaves `module` as it was; unstructured pruning edits it in place.
    reference = copy.deepcopy(module) if cfg.method == "unstructured" and cfg.latency else module
    params, macs = count_params(module), count_macs(module, ctx.data.input_shape, ctx.device)
    run = _channel if cfg.method == "channel" else _unstructured
    pruned, curve, facts = run(module, ctx, cfg, teacher)
    params_after, macs_after = count_params(pruned), count_macs(pruned, ctx.data.input_shape, ctx.device)
    if cfg.method == "channel":
        facts["sparsity"] = 1 - params_after / max(1, params)  # of all the weights
    info = PruneFacts(method=cfg.method, schedule=cfg.schedule, params_before=params, params_after=params_after,
                      macs_before=macs, macs_after=macs_after,
                      mac_reduction=macs / macs_after if macs and macs_after else None,
                      **(_speedup(reference, pruned, ctx) if cfg.latency else {}), **facts)
    summary = PruningSummary(method=info.method, sparsity=info.sparsity, mac_reduction=info.mac_reduction)
    return StepOutput(replace(model, module=pruned, info=model.info.model_copy(update={"pruning": summary})), curve,
                      info)


# ---------------------------------------------------------------- channel
def _channel(module: nn.Module, ctx: StepContext, cfg: PruneConfig,
             teacher: nn.Module | None) -> tuple[nn.Module, list[EpochRecord], dict[str, Any]]:
    rounds = iterative_fractions(cfg.iterations if cfg.schedule == "iterative" else 1)
    current, curve, ratios, top1_pruned, base = module, [], [], None, 0
    other_reduction: float | None = None
    original: dict[str, int] = {}  # channels per group, before the first round and after the last
    final: dict[str, int] = {}
    if cfg.round_to == "auto":
        int8 = cfg.runs_in == "int8" or cfg.runs_in == "auto" and ctx.int8_later
        rounding = auto_round_to(ctx.device, cfg.target, int8)
        round_to, narrowest, round_to_for = rounding.multiple, rounding.narrowest, rounding.machine
    else:
        round_to, narrowest, round_to_for = cfg.round_to, NARROWEST, None
    options = dict(scope=cfg.scope, overrides=cfg.overrides, round_to=round_to, max_ratio=cfg.max_layer_ratio,
                   narrowest=narrowest)
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

            ratio, other = nearest_ratio(reduction, goal, cfg.max_layer_ratio) if goal > 1 else (0.0, None)
            other_reduction = other and other * base / now  # of the whole model, not of this round's
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
                             "round_to_for": round_to_for, "round_to_narrowest": min(narrowest, round_to) if round_to else None,
                             "ratio": ratios[-1], "ratios": ratios,
                             "target_mac_reduction": cfg.target_mac_reduction, "other_plan_reduction": other_reduction,
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
    return ctx.fit(module, ctx.self_distillation(teacher, cfg.finetune), cfg.finetune, hooks, title)


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
