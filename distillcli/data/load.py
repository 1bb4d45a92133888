"""``load_data(cfg)``: the dataset a ``data:`` recipe section names, as a DataBundle."""

from __future__ import annotations

import torch

from distillcli.data.bundle import DataBundle
from distillcli.data.config import IMAGENET_MEAN, IMAGENET_STD, DataConfig, PretrainedInput
from distillcli.data.registry import DATASETS, unused_keys
from distillcli.errors import OptionError


def load_data(
    cfg: DataConfig, device: torch.device | str = "cpu", seed: int = 0, channels_last: bool = False,
    pretrained: PretrainedInput | None = None,
) -> DataBundle:
    """Build the dataset named by ``cfg.name`` (unknown names get a did-you-mean error).

    ``pretrained``: how the recipe's pretrained model expects images (``recipe_models.pretrained_input_of``).
    Datasets of photos take its mean/std (else ImageNet's), size, interpolation and crop fraction where
    ``data:`` does not give them, and record the values used in ``bundle.spec`` (so in every model file)."""
    entry = DATASETS.get(cfg.name)
    unused = unused_keys(cfg, entry)
    if unused:
        keys = ", ".join(f"data.{key}" for key in unused)
        reads = f" ({cfg.name} reads: {', '.join(entry.keys)})" if entry.keys else ""
        raise OptionError(f"dataset {cfg.name!r} does not use {keys}", f"remove {keys} from the recipe{reads}")
    if entry.photos:
        p = pretrained or PretrainedInput(IMAGENET_MEAN, IMAGENET_STD, 32)
        given = cfg.model_dump(exclude_none=True)
        cfg = cfg.model_copy(update={k: v for k, v in (("mean", list(p.mean)), ("std", list(p.std)), ("image_size", p.size),
                                                        ("interpolation", p.interpolation),
                                                        ("crop_fraction", p.crop_fraction)) if k not in given})
    bundle = entry.load()(cfg, torch.device(device), seed, channels_last)
    bundle.spec = cfg.model_dump()
    return bundle
