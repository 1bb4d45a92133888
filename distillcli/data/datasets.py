"""The dataset registry and what every builder shares: option checks, subsets, bundling.

A builder is ``builder(cfg, device, seed, channels_last) -> DataBundle``; ``load_data`` in
``distillcli.data`` looks it up by ``cfg.name``.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from distillcli.data.bundle import DataBundle
from distillcli.data.config import DataConfig
from distillcli.data.loaders import Augment, TensorLoader
from distillcli.errors import OptionError
from distillcli.registry import Registry

Builder = Callable[[DataConfig, torch.device, int, bool], DataBundle]
DATASETS: Registry[Builder] = Registry("dataset")

# Options that only some datasets read; the others reject them rather than ignore them.
_OPTIONAL = ("image_size", "num_classes", "channels", "train_size", "val_size")


def check_options(cfg: DataConfig, used: tuple[str, ...] = ()) -> None:
    """Reject optional ``data.*`` keys that this dataset does not read."""
    unused = [key for key in _OPTIONAL if key not in used and getattr(cfg, key) is not None]
    if unused:
        keys = ", ".join(f"data.{key}" for key in unused)
        raise OptionError(
            f"dataset {cfg.name!r} does not use {keys}",
            f"remove {keys} from the recipe" + (f" ({cfg.name} reads: {', '.join(used)})" if used else ""),
        )


def resolve_augment(cfg: DataConfig, default: Augment) -> Augment:
    return default if cfg.augment == "auto" else cfg.augment


def resolve_norm(
    cfg: DataConfig, channels: int, mean: list[float], std: list[float]
) -> tuple[list[float], list[float]]:
    """The dataset's mean/std unless the recipe gives its own (one value per channel)."""
    for key, given in (("mean", cfg.mean), ("std", cfg.std)):
        if given is not None and len(given) != channels:
            raise OptionError(
                f"data.{key} has {len(given)} value(s) but {cfg.name} images have {channels} channel(s)",
                f"give {channels} value(s), e.g. --set data.{key}=[{', '.join(['0.5'] * channels)}]",
            )
    if cfg.std is not None and any(s <= 0 for s in cfg.std):
        raise OptionError(
            f"data.std must be positive, got {cfg.std}", "give the per-channel standard deviation, e.g. 0.25"
        )
    return list(cfg.mean or mean), list(cfg.std or std)


def subset_size(requested: int | None, available: int) -> int:
    """First-N subsets: N larger than the split keeps the whole split."""
    return available if requested is None else min(requested, available)


def tensor_bundle(
    cfg: DataConfig,
    device: torch.device,
    seed: int,
    channels_last: bool,
    *,
    train: tuple[Tensor, Tensor],
    val: tuple[Tensor, Tensor],
    class_names: list[str],
    mean: list[float],
    std: list[float],
    default_augment: Augment,
) -> DataBundle:
    """Bundle in-memory uint8 splits (images (N, C, H, W), int64 labels) into TensorLoaders."""
    (train_x, train_y), (val_x, val_y) = train, val
    channels = train_x.shape[1]
    mean, std = resolve_norm(cfg, channels, mean, std)
    n_train, n_val = subset_size(cfg.train_subset, len(train_y)), subset_size(cfg.val_subset, len(val_y))
    return DataBundle(
        name=cfg.name,
        train=TensorLoader(
            train_x[:n_train], train_y[:n_train], cfg.batch_size, shuffle=True,
            augment=resolve_augment(cfg, default_augment), seed=seed, device=device, channels_last=channels_last,
        ),
        val=TensorLoader(
            val_x[:n_val], val_y[:n_val], cfg.eval_batch_size, seed=seed, device=device, channels_last=channels_last
        ),
        num_classes=len(class_names),
        class_names=class_names,
        mean=mean,
        std=std,
        input_shape=(channels, train_x.shape[2], train_x.shape[3]),
    )
