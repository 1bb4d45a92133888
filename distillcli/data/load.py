"""``load_data(cfg)``: the dataset a ``data:`` recipe section names, as a DataBundle."""

from __future__ import annotations

import torch

from distillcli.data.bundle import DataBundle
from distillcli.data.config import IMAGENET_MEAN, IMAGENET_STD, DataConfig
from distillcli.data.registry import DATASETS, unused_keys
from distillcli.errors import OptionError


def load_data(
    cfg: DataConfig, device: torch.device | str = "cpu", seed: int = 0, channels_last: bool = False,
    norm: tuple[list[float], list[float]] | None = None,
) -> DataBundle:
    """Build the dataset named by ``cfg.name`` (unknown names get a did-you-mean error).

    ``norm``: the (mean, std) the recipe's pretrained model expects (``recipe_models.pretrained_norm``).
    Datasets of photos take it, else ImageNet's, where ``data.mean``/``std`` are not given, and
    record the values used in ``bundle.spec`` (so in every model file's data)."""
    entry = DATASETS.get(cfg.name)
    unused = unused_keys(cfg, entry)
    if unused:
        keys = ", ".join(f"data.{key}" for key in unused)
        reads = f" ({cfg.name} reads: {', '.join(entry.keys)})" if entry.keys else ""
        raise OptionError(f"dataset {cfg.name!r} does not use {keys}", f"remove {keys} from the recipe{reads}")
    if entry.photos:
        mean, std = norm or (IMAGENET_MEAN, IMAGENET_STD)
        cfg = cfg.model_copy(update={"mean": cfg.mean or list(mean), "std": cfg.std or list(std)})
    bundle = entry.load()(cfg, torch.device(device), seed, channels_last)
    bundle.spec = cfg.model_dump()
    return bundle
