"""``load_data(cfg)``: the dataset a ``data:`` recipe section names, as a DataBundle."""

from __future__ import annotations

import torch

from distillcli.data import cifar, digits, folder, synthetic  # noqa: F401  (each registers its datasets)
from distillcli.data.bundle import DataBundle
from distillcli.data.config import DataConfig
from distillcli.data.datasets import DATASETS


def load_data(
    cfg: DataConfig, device: torch.device | str = "cpu", seed: int = 0, channels_last: bool = False
) -> DataBundle:
    """Build the dataset named by ``cfg.name`` (unknown names get a did-you-mean error)."""
    bundle = DATASETS.get(cfg.name)(cfg, torch.device(device), seed, channels_last)
    bundle.spec = cfg.model_dump()
    return bundle
