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

from distillcli.compress.choices import ImportanceName
from distillcli.errors import CompressionError, OptionError

IMPORTANCES: tuple[str, ...] = ("l1", "l2", "bn_scale", "taylor")


def make_importance(name: ImportanceName) -> tp.importance.Importance:
    """l1 / l2: norm of the channel's weights; bn_scale: |gamma| of its BatchNorms (Liu et al.
    2017); taylor: |weight x gradient| (Molchanov et al. 2019), needs ``accumulate_gradients``."""
    if name == "l1":
        return tp.importance.GroupMagnitudeImportance(p=1)
    if name == "l2":
        return tp.importance.GroupMagnitudeImportance(p=2)
    if name == "bn_scale":
        return tp.importance.BNScaleImportance()
    if name == "taylor":
        return tp.importance.GroupTaylorImportance()
    raise OptionError(f"unknown importance {name!r}", f"choose one of {', '.join(IMPORTANCES)}")


def needs_gradients(name: str) -> bool:
    return name == "taylor"


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
