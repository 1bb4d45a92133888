"""The published CIFAR-10 ResNets (akamaster) the benchmarks start from.

They were trained with ImageNet's mean/std, not CIFAR-10's (ResNet-56 reads 93.39 % with the
former, 93.28 % with the latter), so every benchmark builds them with these statistics.
"""

from __future__ import annotations

from pathlib import Path

from distillcli.models.weights import load_foreign_weights
from distillcli.models.build import build_model
from distillcli.models.handle import ArchSpec, ModelHandle

IMAGENET = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}


def published_model(name: str, checkpoint: str | Path | None = None) -> ModelHandle:
    """A 10-class CIFAR model ``name`` normalised as the published ones are, with the published
    weights from ``checkpoint`` (a DataParallel state dict), else freshly initialised."""
    arch = ArchSpec(name, 10, 3, IMAGENET["mean"], IMAGENET["std"])
    handle = ModelHandle(build_model(arch), arch)
    if checkpoint:
        load_foreign_weights(handle.module, checkpoint, strip_prefix="module.")
    return handle
