"""Image folders in torchvision's ImageFolder layout: ``root/{train,val}/<class>/<image>``."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset, Subset

from distillcli.data.bundle import DataBundle
from distillcli.data.config import DataConfig
from distillcli.data.datasets import resolve_augment, resolve_norm, split_off, subset_size
from distillcli.data.loaders import FolderLoader
from distillcli.errors import DataError

LAYOUT_HINT = (
    "data.root must contain train/<class>/<image> and val/<class>/<image> "
    "(torchvision ImageFolder layout), e.g. --set data.root=/path/to/images"
)


class IndexedImages(Dataset):
    """ImageFolder items as ``(uint8 CHW tensor, label, index)``; unreadable files raise DataError."""

    def __init__(self, folder: Any) -> None:
        self.folder = folder

    def __len__(self) -> int:
        return len(self.folder)

    def __getitem__(self, index: int) -> tuple[Tensor, int, int]:
        try:
            image, label = self.folder[index]
        except OSError as err:  # PIL's UnidentifiedImageError is an OSError
            path = self.folder.samples[index][0]
            raise DataError(f"cannot read image {path}: {err}", "delete or replace the file") from None
        return image, label, index


def _open_split(root: Path, split: str, size: int) -> Any:
    from torchvision import transforms as T
    from torchvision.datasets import ImageFolder

    path = root / split
    if not path.is_dir():
        raise DataError(f"imagefolder: {path} is not a folder", LAYOUT_HINT)
    # The default loader converts grayscale, palette and RGBA images to RGB.
    transform = T.Compose([T.Resize(size), T.CenterCrop(size), T.PILToTensor()])
    try:
        return ImageFolder(str(path), transform=transform)
    except FileNotFoundError as err:  # no class folders, or class folders without images
        raise DataError(f"imagefolder: no images under {path} ({err})", LAYOUT_HINT) from None


def _describe(folder: Any, indices: list[int], size: int) -> str:
    """The training samples' identity without reading them: each file's path, size and
    modification time, in split order, and the image size they are resized to."""
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{size}\n".encode())
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
    size = cfg.image_size or 32
    train, val = _open_split(root, "train", size), _open_split(root, "val", size)
    if train.classes != val.classes:
        only_train = sorted(set(train.classes) - set(val.classes))
        only_val = sorted(set(val.classes) - set(train.classes))
        raise DataError(
            f"imagefolder: train/ and val/ have different classes "
            f"(only in train: {only_train or 'none'}; only in val: {only_val or 'none'})",
            f"give {root}/val one folder per class of {root}/train, with the same names",
        )
    mean, std = resolve_norm(cfg, 3, [0.5] * 3, [0.5] * 3)

    def loader(data: Dataset, batch_size: int, train_split: bool, indices: list[int] | None = None) -> FolderLoader:
        return FolderLoader(
            data,
            batch_size,
            shuffle=train_split,
            augment=resolve_augment(cfg, "standard") if train_split else "none",
            seed=seed,
            device=device,
            channels_last=channels_last,
            workers=cfg.workers,
            replay=cfg.augment_replay if train_split else None,
            describe=(lambda: _describe(train, indices, size)) if indices is not None else None,
        )

    train_data, select = _first(IndexedImages(train), cfg.train_subset), None
    train_indices = list(range(len(train_data)))
    if cfg.val_split is not None:  # Subsets keep the index in train/, so both splits yield it
        keep, held = split_off(torch.tensor(train.targets[: len(train_data)]), cfg.val_split, seed)
        select = loader(Subset(train_data, held.tolist()), cfg.eval_batch_size, False)
        train_data, train_indices = Subset(train_data, keep.tolist()), keep.tolist()
    return DataBundle(
        name=cfg.name,
        train=loader(train_data, cfg.batch_size, True, train_indices),
        val=loader(_first(IndexedImages(val), cfg.val_subset), cfg.eval_batch_size, False),
        select=select,
        num_classes=len(train.classes),
        class_names=list(train.classes),
        mean=mean,
        std=std,
        input_shape=(3, size, size),
    )
