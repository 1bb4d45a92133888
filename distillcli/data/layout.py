"""Each on-disk dataset's layout, checked cheaply and without torch for `distill validate` (a
dataset entry's ``layout``): what the loader would refuse, said before a run starts."""

from __future__ import annotations

import os
from pathlib import Path

from distillcli.data.config import DataConfig
from distillcli.data.list_rows import listing, read_lists
from distillcli.errors import DataError

# what torchvision's ImageFolder reads (torchvision.datasets.folder.IMG_EXTENSIONS)
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


def list_file_problems(cfg: DataConfig) -> list[str]:
    """The list files read, their classes agree, and every listed image exists."""
    if not Path(cfg.root).expanduser().exists():
        return []  # reported with the other datasets read from disk
    try:
        read_lists(cfg)
    except DataError as e:
        return [f"data.root: {e.message}; {e.hint}" if e.hint else f"data.root: {e.message}"]
    return []


def image_folder_problems(cfg: DataConfig) -> list[str]:
    """The layout root/{train,val}/<class>/<image>, the same classes in both: what is missing, if anything."""
    root = cfg.root
    base = Path(root).expanduser()
    if not base.exists():
        return []  # reported with the other datasets read from disk
    missing: list[str] = []
    classes: dict[str, list[str]] = {}
    try:
        for split in ("train", "val"):
            folder = base / split
            if not folder.is_dir():
                missing.append(f"no {split}/ folder")
                continue
            with os.scandir(folder) as entries:
                classes[split] = sorted(e.name for e in entries if e.is_dir())
            if not classes[split]:
                missing.append(f"no class folders in {split}/")
            empty = [name for name in classes[split] if not _has_image(folder / name)]
            if empty:
                missing.append(f"class folders without images in {split}/: {listing(empty, ', ')}")
    except OSError as e:
        return [f"data.root: {root!r} cannot be read ({e.strerror or e})"]
    if len(classes) == 2 and all(classes.values()) and classes["train"] != classes["val"]:
        for split, other in (("train", "val"), ("val", "train")):
            only = sorted(set(classes[split]) - set(classes[other]))
            if only:
                missing.append(f"classes only in {split}/: {listing(only, ', ')}")
    if not missing:
        return []
    return [f"data.root: {root!r} is not an image folder ({'; '.join(missing)}); lay it out as "
            "root/train/<class>/<image> and root/val/<class>/<image>, with the same class folders in both"]


def _has_image(folder: Path) -> bool:
    """Whether ImageFolder would find an image in ``folder`` (stops at the first one)."""
    for _, _, files in os.walk(folder, followlinks=True):
        if any(name.lower().endswith(_IMAGE_SUFFIXES) for name in files):
            return True
    return False

