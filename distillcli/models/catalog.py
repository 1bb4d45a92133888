"""`distill list models --details`: each model's size and cost at CIFAR size (the names come from
``models.sources``, without torch).

Models are built on the ``meta`` device (shapes only: no memory, no initialisation work),
which counts parameters and MACs of even the largest torchvision models in a fraction of a
second. A builder that needs real values while it builds (RegNet computes its widths with
tensors) is built on the CPU instead.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import nn

from distillcli.measure import count_macs, count_params
from distillcli.models.backbones import build_backbone

NUM_CLASSES = 10
INPUT_SHAPE = (3, 32, 32)


def _build(name: str, device: str) -> nn.Module:
    with warnings.catch_warnings(), torch.device(device):
        warnings.simplefilter("ignore")  # e.g. GoogLeNet's notice about its future initialisation
        return build_backbone(name, NUM_CLASSES, INPUT_SHAPE[0])


def model_details(name: str) -> dict[str, Any]:
    """{name, params, macs} for a NUM_CLASSES-way model on one INPUT_SHAPE image; None where
    the model cannot be built, or cannot run at that size (e.g. ViTs fixed to 224x224)."""
    model, device = None, "meta"
    for device in ("meta", "cpu"):
        try:
            model = _build(name, device)
            break
        except Exception:  # any builder failure (meta: a value needed at build time) -> next device / "-"
            continue
    if model is None:
        return {"name": name, "params": None, "macs": None}
    return {"name": name, "params": count_params(model), "macs": count_macs(model, INPUT_SHAPE, device)}
