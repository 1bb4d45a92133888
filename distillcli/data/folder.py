"""Image folders in torchvision's ImageFolder layout: ``root/{train,val}/<class>/<image>``, and
``image_bundle``, which serves any split of image files (also ``list_file``'s): decoded, resized and
augmented in the loader's workers (``images``), never all held in memory."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset, Subset

from distillcli.data.bundle import DataBundle
from distillcli.data.config import (CROP_FRACTION, IMAGENET_MEAN, IMAGENET_STD, LARGE_IMAGE, MAX_AUTO_WORKERS, SMALL_SPLIT,
                                    DataConfig)
from distillcli.data.datasets import resolve_augment, resolve_norm, held_out, subset_size
from distillcli.data.images import ResizedCropFlip, Transform, Unreadable, decode, eval_transform
from distillcli.data.loaders import FolderLoader
from distillcli.errors import DataError

LAYOUT_HINT = (
    "data.root must contain train/<class>/<image> and val/<class>/<image> "
    "(torchvision ImageFolder layout), e.g. --set data.root=/path/to/images"
)


class IndexedImages(Dataset):
    """The image files of ``folder.samples`` (path, label) as ``(image, label, index)``: the image
    decoded as RGB and, given a ``transform``, a uint8 CHW tensor; an ``Unreadable`` in its place when
    it cannot be decoded (the loader raises one DataError for the batch)."""

    def __init__(self, folder: Any, transform: Transform | None) -> None:
        self.folder, self.transform = folder, transform

    def __len__(self) -> int:
        return len(self.folder.samples)

    def __getitem__(self, index: int) -> tuple[Any, int, int]:
        path, label = self.folder.samples[index]
        image = decode(path)
        if self.transform is not None and not isinstance(image, Unreadable):
            image = self.transform(image)
        return image, label, index


def _open_split(root: Path, split: str) -> Any:
    from torchvision.datasets import ImageFolder

    path = root / split
    if not path.is_dir():
        raise DataError(f"imagefolder: {path} is not a folder", LAYOUT_HINT)
    try:
        return ImageFolder(str(path))
    except FileNotFoundError as err:  # no class folders, or class folders without images
        raise DataError(f"imagefolder: no images under {path} ({err})", LAYOUT_HINT) from None


def resolve_workers(workers: int | str, samples: int) -> int:
    """``data.workers``; auto: one per core but one, at most MAX_AUTO_WORKERS, and none for a split of
    fewer than SMALL_SPLIT images (starting the processes would cost more than they save)."""
    if workers != "auto":
        return int(workers)
    if samples < SMALL_SPLIT:
        return 0
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(0, min(MAX_AUTO_WORKERS, cores - 1))


def _describe(folder: Any, indices: list[int], size: int) -> str:
    """The training samples' identity without reading them: each file's path, size and
    modification time, in split order, and the image size and augmentation scheme they get."""
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{size}{' resized-crop' if size >= LARGE_IMAGE else ''}\n".encode())
    for i in indices:
        path = folder.samples[i][0]
        stat = os.stat(path)
        h.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return h.hexdigest()


def _first(data: IndexedImages, n: int | None) -> Dataset:
    count = subset_size(n, len(data))
    return data if count == len(data) else Subset(data, range(count))


def build_imagefolder(cfg: DataConfig, device: torch.device, seed: int, channels_last: bool) -> DataBundle:
    root = Path(cfg.root).expanduser().resolve()
    train, val = _open_split(root, "train"), _open_split(root, "val")
    if train.classes != val.classes:
        only_train = sorted(set(train.classes) - set(val.classes))
        only_val = sorted(set(val.classes) - set(train.classes))
        raise DataError(
            f"imagefolder: train/ and val/ have different classes "
            f"(only in train: {only_train or 'none'}; only in val: {only_val or 'none'})",
            f"give {root}/val one folder per class of {root}/train, with the same names",
        )
    return image_bundle(cfg, device, seed, channels_last, train, val)


def image_bundle(cfg: DataConfig, device: torch.device, seed: int, channels_last: bool, train: Any,
                 val: Any) -> DataBundle:
    """Loaders of two splits of image files; each split has ``samples`` [(path, label)], ``targets``
    (the labels) and ``classes`` (the names; the training split's name the bundle's classes).

    Below LARGE_IMAGE px every image is resized and centre-cropped, and training batches get the
    pad-4 crop and flip; from LARGE_IMAGE px on training takes random resized crops of the decoded
    images, and evaluation resizes to size / crop_fraction and centre-crops (``images``)."""
    size = cfg.image_size or 32
    augment = resolve_augment(cfg, "standard")
    interpolation = cfg.interpolation or "bilinear"
    evaluate = eval_transform(size, interpolation, cfg.crop_fraction or CROP_FRACTION)
    per_image = size >= LARGE_IMAGE and augment != "none"
    mean, std = resolve_norm(cfg, 3, IMAGENET_MEAN, IMAGENET_STD)

    def loader(data: Dataset, batch_size: int, train_split: bool, indices: list[int] | None = None) -> FolderLoader:
        return FolderLoader(
            data,
            batch_size,
            shuffle=train_split,
            augment=augment if train_split else "none",
            seed=seed,
            device=device,
            channels_last=channels_last,
            workers=resolve_workers(cfg.workers, len(data)),  # type: ignore[arg-type]
            replay=cfg.augment_replay if train_split else None,
            describe=(lambda: _describe(train, indices, size)) if indices is not None else None,
            sample_augment=ResizedCropFlip(size, augment == "standard", interpolation) if train_split and per_image else None,
        )

    train_data, select = _first(IndexedImages(train, None if per_image else evaluate), cfg.train_subset), None
    test_data = _first(IndexedImages(val, evaluate), cfg.val_subset)
    train_indices = list(range(len(train_data)))
    split = held_out(cfg, seed, torch.tensor(train.targets[: len(train_data)]),
                     torch.tensor(val.targets[: len(test_data)]))  # type: ignore[arg-type]
    if split.val is not None:  # Subsets keep the index in their split, so both loaders yield it
        source = val if split.source == "test" else train
        select = loader(Subset(IndexedImages(source, evaluate), split.val.tolist()), cfg.eval_batch_size, False)
    if split.train is not None:
        train_data, train_indices = Subset(train_data, split.train.tolist()), split.train.tolist()
    if split.test is not None:
        test_data = Subset(test_data, split.test.tolist())
    return DataBundle(
        name=cfg.name,
        train=loader(train_data, cfg.batch_size, True, train_indices),
        val=loader(test_data, cfg.eval_batch_size, False),
        select=select,
        num_classes=len(train.classes),
        class_names=list(train.classes),
        mean=mean,
        std=std,
        input_shape=(3, size, size),
    )
