"""Channel importance criteria, by the names recipes use.

All are torch-pruning group criteria: a channel's score is reduced over every coupled layer
of its group, then divided by the group's mean so scores of different groups compare
(which global ranking needs).
"""

from __future__ import annotations

from itertools import islice
from typing import Iterable

import torch.nn.functional as F
import torch_pruning as tp
from torch import Tensor, nn

from distillcli.compress.choices import IMPORTANCES, ImportanceName
from distillcli.errors import CompressionError


def make_importance(name: ImportanceName) -> tp.importance.Importance:
    """The criterion registered as ``name`` (``compress.choices.IMPORTANCES``)."""
    return IMPORTANCES.get(name).load()()


def needs_gradients(name: str) -> bool:
    return IMPORTANCES.get(name).needs_gradients


def l1() -> tp.importance.Importance:
    return tp.importance.GroupMagnitudeImportance(p=1)


def l2() -> tp.importance.Importance:
    return tp.importance.GroupMagnitudeImportance(p=2)


def bn_scale() -> tp.importance.Importance:
    return tp.importance.BNScaleImportance()


def taylor() -> tp.importance.Importance:
    """Needs ``accumulate_gradients`` first."""
    return tp.importance.GroupTaylorImportance()


def accumulate_gradients(model: nn.Module, batches: Iterable[tuple[Tensor, Tensor, Tensor]], limit: int) -> None:
    """Sum the cross-entropy gradients of ``limit`` batches into ``.grad`` (eval mode, so
    BatchNorm statistics stay untouched)."""
    was_training = model.training
    model.eval()
    model.zero_grad(set_to_none=True)
    for p in model.parameters():
        p.requires_grad_(True)
    seen = 0
    for images, labels, _ in islice(batches, limit):
        F.cross_entropy(model(images), labels).backward()
        seen += 1
    model.train(was_training)
    if not seen:
        raise CompressionError("taylor importance needs training data, and the training set is empty",
                               "use importance: l1 (weights only), or give data with training samples")
