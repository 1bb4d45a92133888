"""A candidate's cost and the single number Optuna minimises.

score = cost / the starting model's cost (see ``cost_ratio``) when the candidate loses at most ``max_drop`` points
(on the validation split), else INFEASIBLE + the points over: every candidate within the drop
beats every one outside it, and among those outside, the nearer one is better. Successive
halving compares the same number after each fine-tune epoch; until a candidate is finished its
cost is the one of its latest measured model (the pruned float model during the fine-tune), so
rungs rank candidates by structure and accuracy, and the precision counts once it is applied.
"""

from __future__ import annotations

from dataclasses import dataclass

from distillcli.facts import ShareFacts
from distillcli.record import Measures, StepRecord

INFEASIBLE = 10.0
SEEN_TOP1 = 99.5  # a starting model this good on held-out images has most likely trained on them


@dataclass(frozen=True)
class Reference:
    """The starting model, measured on the validation split."""

    top1: float
    cost: float


def seen_warning(ref: Reference) -> str | None:
    """Why the drops will mislead, when the starting model looks as if it trained on the held-out split."""
    if ref.top1 < SEEN_TOP1:
        return None
    return (f"the starting model scores {ref.top1:.2f} % on the held-out split: it has most likely trained on "
            "those images (a model trained on the whole training set has), so a fine-tuned candidate loses that "
            "memorisation and its drop reads larger there than on the test split; the search will turn down "
            "candidates that would pass. Set auto.val_from: test (compare on a share of the test split, measure on the "
            "rest), start from a model trained with the same data.val_split, or compare best.val with best.test in "
            "auto.json")


def step_cost(step: StepRecord, objective: str, batch: int) -> float | None:
    """The cost of the model a step left: latency (ms at ``batch``), stored bytes (Deep
    Compression accounting after weight sharing, else 4 bytes per non-zero parameter) or MACs."""
    m = step.measures
    if objective == "latency":
        return m.latency_ms.get(str(batch))
    if objective == "macs":
        return float(m.macs) if m.macs is not None else None
    if isinstance(step.info, ShareFacts):
        return float(step.info.huffman_bytes)
    return 4.0 * m.nonzero_params if m.nonzero_params is not None else None


def last_cost(steps: list[StepRecord], objective: str, batch: int) -> float | None:
    """The cost of the last step that measured one (an int8 program has no MAC count: the float model's stands)."""
    return next((c for s in reversed(steps) if (c := step_cost(s, objective, batch)) is not None), None)


def cost_ratio(cost: float, ref: Reference, objective: str, batch: int, baseline: Measures | None = None) -> float:
    """``cost`` / the starting model's. For latency, the starting model as the candidate's own run
    timed it in alternation with the candidate (``baseline``), when it did: one reference timing
    for a whole search would carry the machine's load at that moment into every ratio."""
    base = baseline.latency_ms.get(str(batch)) if objective == "latency" and baseline is not None else None
    return cost / (base or ref.cost)


def score(top1: float, ratio: float, ref: Reference, max_drop: float) -> float:
    drop = ref.top1 - top1
    return ratio if drop <= max_drop else INFEASIBLE + drop - max_drop


def ratio_text(objective: str, ratio: float) -> str:
    """cost / reference cost as people say it: '2.31x faster', '12.5x smaller', '3.02x fewer MACs'."""
    if ratio <= 0:
        return "-"
    word = {"latency": ("faster", "slower"), "size": ("smaller", "larger"), "macs": ("fewer MACs", "more MACs")}
    better, worse = word[objective]
    return f"{1 / ratio:.2f}x {better}" if ratio <= 1 else f"{ratio:.2f}x {worse}"

