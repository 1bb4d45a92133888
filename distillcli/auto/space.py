"""The search space: a trial's choices (Optuna suggestions) -> the steps of a plain recipe.

latency / macs: channel pruning (none, or a MAC reduction up to ``max_mac_reduction``, by the
same ratio in every layer, ranked globally, or with per-layer amounts guided by the
sensitivity analysis), a KD fine-tune from the starting model (its length: one of the
successive-halving rungs), then a precision (int8 static or QAT, bf16, fp16, or float).
size: unstructured pruning (sparsity), the same KD fine-tune, then weight sharing (clusters).
"""

from __future__ import annotations

import math
from typing import Any

from distillcli.auto.config import AutoConfig
from distillcli.facts import LayerSensitivity
from distillcli.losses.options import SelfDistillOptions

# The KD fine-tune of a pruned model is a fine-tune: it weighs the teacher as the compression steps'
# fine-tunes do, not as the distill step's default, which was chosen for students trained from scratch.
FINETUNE_ALPHA = SelfDistillOptions.model_fields["alpha"].default

NO_PRUNING = 1.1  # a sampled MAC reduction below this prunes nothing
QAT_EPOCHS = 1


def rungs(cfg: AutoConfig) -> list[int]:
    """Fine-tune lengths tried: 1, r, r^2 ... up to ``max_epochs`` (the successive-halving rungs)."""
    out = [1]
    while out[-1] * cfg.reduction_factor <= cfg.max_epochs:
        out.append(out[-1] * cfg.reduction_factor)
    return out


def suggest(trial: Any, cfg: AutoConfig, guided: bool) -> dict[str, Any]:
    """A candidate's choices; ``guided``: per-layer amounts from a sensitivity analysis exist."""
    if cfg.objective == "size":
        return {"sparsity": trial.suggest_float("sparsity", 0.3, cfg.max_sparsity),
                "clusters": trial.suggest_categorical("clusters", cfg.clusters),
                "epochs": trial.suggest_categorical("epochs", rungs(cfg))}
    choice: dict[str, Any] = {"mac_reduction": trial.suggest_float("mac_reduction", 1.0, cfg.max_mac_reduction,
                                                                    log=True)}
    pruned = choice["mac_reduction"] >= NO_PRUNING
    if pruned:
        choice["guide"] = trial.suggest_categorical("guide", ["layer", "global", "sensitivity"] if guided
                                                    else ["layer", "global"])
        if choice["guide"] == "sensitivity":
            choice["layer_budget"] = trial.suggest_float("layer_budget", 0.1, 4.0, log=True)
    choice["quantize"] = trial.suggest_categorical("quantize", cfg.quantize)
    if pruned:
        choice["epochs"] = trial.suggest_categorical("epochs", rungs(cfg))
    return choice


def seed_candidates(cfg: AutoConfig) -> list[dict[str, Any]]:
    """Tried first: the single techniques a search has to beat (int8 alone; channel pruning 2x + KD)
    and their combination (2x + KD + int8), which TPE would otherwise meet only by chance."""
    if cfg.objective == "size":
        return []
    int8 = "static" in cfg.quantize
    out = [{"mac_reduction": 1.0, "quantize": "static"}] if int8 else []
    if cfg.max_mac_reduction >= 2:
        pruned = {"mac_reduction": 2.0, "guide": "layer", "epochs": rungs(cfg)[-1]}
        out += [{**pruned, "quantize": q} for q in ("none", "static") if q in cfg.quantize]
    return out


# A pruned candidate that missed the drop by at most this share of it is tried again, pruned less.
NEAR_MISS = 1.0
# ... aiming at this share of the allowed drop: the estimate below is rough, so it aims under the limit.
AIM = 0.8


def milder(choice: dict[str, Any], reached: float, drop: float, precision_drop: float,
           max_drop: float) -> dict[str, Any] | None:
    """The same candidate pruned less, after it lost ``drop`` points (``max_drop`` allowed) at
    ``reached`` times fewer MACs; None when it was within the drop, missed it by more than
    ``NEAR_MISS`` of it, or the precision step alone (``precision_drop``, that precision on the
    unpruned model) leaves no room for pruning. Pruning's share of the loss is assumed to grow in
    proportion to log(MAC reduction) (a rough rule, not fitted; the follow-up's own run measures it):
    aiming at ``AIM`` x ``max_drop`` gives reached ** ((aim - precision) / (drop - precision))."""
    if choice.get("sparsity") is not None or choice["mac_reduction"] < NO_PRUNING:
        return None
    precision_drop, aim = max(0.0, precision_drop), AIM * max_drop
    if not max_drop < drop <= (1 + NEAR_MISS) * max_drop or aim <= precision_drop:
        return None
    target = math.floor(reached ** ((aim - precision_drop) / (drop - precision_drop)) * 1000) / 1000
    return {**choice, "mac_reduction": target} if target >= NO_PRUNING else None


def trial_steps(choice: dict[str, Any], cfg: AutoConfig, overrides: dict[str, float]) -> list[dict[str, Any]]:
    """The recipe steps of a candidate; ``overrides``: the sensitivity-guided per-layer amounts."""
    if cfg.objective == "size":
        return [{"prune": {"method": "unstructured", "sparsity": round(choice["sparsity"], 4), "latency": False,
                           "finetune": {"epochs": choice["epochs"], "lr": cfg.lr}}},
                {"share": {"clusters": choice["clusters"], "epochs": 1}}]
    steps: list[dict[str, Any]] = []
    if choice["mac_reduction"] >= NO_PRUNING:
        prune: dict[str, Any] = {"method": "channel", "target_mac_reduction": round(choice["mac_reduction"], 3),
                                 "scope": "global" if choice["guide"] == "global" else "layer", "latency": False}
        if cfg.round_to:
            prune["round_to"] = cfg.round_to
        if choice["guide"] == "sensitivity":
            prune["overrides"] = overrides
        steps += [{"prune": prune}, {"distill": {"epochs": choice["epochs"], "lr": cfg.lr, "alpha": FINETUNE_ALPHA}}]
    if choice["quantize"] == "qat":
        steps.append({"quantize": {"method": "qat", "epochs": QAT_EPOCHS}})
    elif choice["quantize"] != "none":
        steps.append({"quantize": {"method": choice["quantize"]}})
    return steps or [{"evaluate": {}}]


def guided_overrides(rows: list[LayerSensitivity], baseline_top1: float, layer_budget: float) -> dict[str, float]:
    """Sensitive layers (losing more than ``layer_budget`` points at the largest ratio tried) are
    pruned only as far as they stay within it (0: kept whole); the others follow the global ratio."""
    from distillcli.compress.pruning.sensitivity import Sensitivity, SensitivityRow

    result = Sensitivity(baseline_top1, [SensitivityRow(**r.model_dump()) for r in rows])
    top = max(r.ratio for r in rows) if rows else 0.0
    return {layer: ratio for layer, ratio in result.suggest(layer_budget).items() if ratio < top}


def describe(choice: dict[str, Any], achieved: float | None = None) -> str:
    """One line a person reads: 'channel 2.31x (global) + KD 3 ep + int8 static'; ``achieved``:
    the MAC reduction the pruning reached (channel rounding moves it off the target asked)."""
    if "sparsity" in choice:
        return f"unstructured {100 * choice['sparsity']:.0f} % + KD {choice['epochs']} ep + share {choice['clusters']}"
    parts = []
    if choice["mac_reduction"] >= NO_PRUNING:
        guide = choice["guide"] + (f" {choice['layer_budget']:.2g} pt" if choice["guide"] == "sensitivity" else "")
        shown = asked = choice["mac_reduction"]
        if achieved is not None and abs(achieved / asked - 1) > 0.01:
            guide, shown = f"{guide}; asked {asked:.2f}x", achieved
        parts += [f"channel {shown:.2f}x ({guide})", f"KD {choice['epochs']} ep"]
    quant = {"static": "int8 static", "qat": "int8 QAT", "bf16": "bf16", "fp16": "fp16"}.get(choice["quantize"])
    if quant:
        parts.append(quant)
    return " + ".join(parts) or "unchanged"
