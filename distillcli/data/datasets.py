"""What every dataset builder shares: normalisation, subsets, the held-out split, bundling.

A builder is ``builder(cfg, device, seed, channels_last) -> DataBundle``, declared in
``data.registry`` under the name ``data.name`` takes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

from distillcli.data.bundle import DataBundle
from distillcli.data.config import DataConfig
from distillcli.data.loaders import Augment, TensorLoader
from distillcli.errors import DataError, OptionError

Builder = Callable[[DataConfig, torch.device, int, bool], DataBundle]


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


def _split_generator(seed: int) -> torch.Generator:
    """Seeded from the data seed alone, apart from every loader's (seed, epoch) streams."""
    digest = hashlib.blake2b(f"val_split/{seed}".encode(), digest_size=8).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest, "little"))


def split_off(labels: Tensor, share: float, seed: int) -> tuple[Tensor, Tensor]:
    """(kept, held out) sorted positions: ``share`` of the samples held out, class-stratified.

    The total is round(share * N); each class gives floor(share * n_c) samples, and the rest
    go one each to the classes with the largest remainders, so every class is represented in
    proportion. Which samples a class gives is random but depends only on ``seed``: every run
    and every process of a run draws the same split.
    """
    labels = labels.cpu().long()
    n = labels.numel()
    total = int(share * n + 0.5)
    if total < 1:
        raise DataError(f"data.val_split {share:g} of {n} sample(s) holds out none",
                        "raise data.val_split or use more training samples (data.train_subset)")
    counts = torch.bincount(labels).double()
    exact = counts * share
    quota = exact.floor().long()
    extra = total - int(quota.sum())
    if extra > 0:  # largest remainders first, ties to the lower class
        order = torch.sort(exact - quota, descending=True, stable=True).indices
        quota[order[:extra]] += 1
    g = _split_generator(seed)
    order = torch.argsort(torch.rand(n, generator=g))  # random within each class ...
    order = order[torch.argsort(labels[order], stable=True)]  # ... grouped by class
    sorted_labels = labels[order]
    starts = torch.cumsum(counts.long(), 0) - counts.long()
    rank = torch.arange(n) - starts[sorted_labels]
    held = order[rank < quota[sorted_labels]]
    keep = torch.ones(n, dtype=torch.bool)
    keep[held] = False
    return keep.nonzero().squeeze(1), held.sort().values


@dataclass(frozen=True)
class HeldOut:
    """Positions kept in the training and test splits, and those the validation split takes from the
    split ``source`` names (all None: no validation split)."""

    train: Tensor | None = None
    test: Tensor | None = None
    val: Tensor | None = None
    source: str = "train"


TEST_SPLIT_SEED = 0  # val_from: test draws its share with this seed: one split for every run and search


def held_out(cfg: DataConfig, seed: int, train_labels: Tensor, test_labels: Tensor) -> HeldOut:
    """The validation split ``data.val_split`` asks for, from ``data.val_from``'s split."""
    if cfg.val_split is None:
        return HeldOut()
    if cfg.val_from == "test":
        keep, held = split_off(test_labels, cfg.val_split, TEST_SPLIT_SEED)
        return HeldOut(test=keep, val=held, source="test")
    keep, held = split_off(train_labels, cfg.val_split, seed)
    return HeldOut(train=keep, val=held)


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
    """Bundle in-memory uint8 splits (images (N, C, H, W), int64 labels) into TensorLoaders.

    With ``data.val_split`` a share of the (subset) training samples becomes ``select``; both
    loaders then yield the samples' indices in the training split (``val_from: test``: a share of
    the test samples, which leave ``val``).
    """
    (train_x, train_y), (val_x, val_y) = train, val
    channels = train_x.shape[1]
    mean, std = resolve_norm(cfg, channels, mean, std)
    n_train, n_val = subset_size(cfg.train_subset, len(train_y)), subset_size(cfg.val_subset, len(val_y))
    train_x, train_y = train_x[:n_train], train_y[:n_train]
    where = {"seed": seed, "device": device, "channels_last": channels_last}
    val_x, val_y = val_x[:n_val], val_y[:n_val]
    split, select = held_out(cfg, seed, train_y, val_y), None
    if split.val is not None:
        x, y = (val_x, val_y) if split.source == "test" else (train_x, train_y)
        select = TensorLoader(x[split.val], y[split.val], cfg.eval_batch_size, ids=split.val, **where)
    if split.train is not None:
        train_x, train_y = train_x[split.train], train_y[split.train]
    if split.test is not None:
        val_x, val_y = val_x[split.test], val_y[split.test]
    return DataBundle(
        name=cfg.name,
        train=TensorLoader(train_x, train_y, cfg.batch_size, shuffle=True,
                           augment=resolve_augment(cfg, default_augment), ids=split.train,
                           replay=cfg.augment_replay, **where),
        val=TensorLoader(val_x, val_y, cfg.eval_batch_size, **where),
        select=select,
        num_classes=len(class_names),
        class_names=class_names,
        mean=mean,
        std=std,
        input_shape=(channels, train_x.shape[2], train_x.shape[3]),
    )
