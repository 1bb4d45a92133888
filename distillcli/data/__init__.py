"""Datasets and batch loaders: ``load_data(cfg)`` turns a ``data:`` recipe section into a DataBundle."""

from __future__ import annotations

import torch

from distillcli.data import cifar, digits, folder, synthetic  # noqa: F401  (each registers its datasets)
from distillcli.data.bundle import BatchLoader, DataBundle
from distillcli.data.config import DataConfig
from distillcli.data.datasets import DATASETS
from distillcli.data.loaders import FolderLoader, TensorLoader

__all__ = ["DATASETS", "BatchLoader", "DataBundle", "DataConfig", "FolderLoader", "TensorLoader", "load_data"]


def load_data(
    cfg: DataConfig, device: torch.device | str = "cpu", seed: int = 0, channels_last: bool = False
) -> DataBundle:
    """Build the dataset named by ``cfg.name`` (unknown names get a did-you-mean error)."""
    bundle = DATASETS.get(cfg.name)(cfg, torch.device(device), seed, channels_last)
    bundle.spec = cfg.model_dump()
    return bundle
