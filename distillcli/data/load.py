"""``load_data(cfg)``: the dataset a ``data:`` recipe section names, as a DataBundle."""

from __future__ import annotations

import torch

from distillcli.data.bundle import DataBundle
from distillcli.data.config import DataConfig
from distillcli.data.registry import DATASETS, unused_keys
from distillcli.errors import OptionError


def load_data(
    cfg: DataConfig, device: torch.device | str = "cpu", seed: int = 0, channels_last: bool = False
) -> DataBundle:
    """Build the dataset named by ``cfg.name`` (unknown names get a did-you-mean error)."""
    entry = DATASETS.get(cfg.name)
    unused = unused_keys(cfg, entry)
    if unused:
        keys = ", ".join(f"data.{key}" for key in unused)
        reads = f" ({cfg.name} reads: {', '.join(entry.keys)})" if entry.keys else ""
        raise OptionError(f"dataset {cfg.name!r} does not use {keys}", f"remove {keys} from the recipe{reads}")
    bundle = entry.load()(cfg, torch.device(device), seed, channels_last)
    bundle.spec = cfg.model_dump()
    return bundle
