"""Recipe checks that look at files, cheaply and without torch: a checkpoint must be a weights
file (by its first bytes), an image folder must have the layout the loader reads."""

from __future__ import annotations

import os
from pathlib import Path

from distillcli.modelfile.formats import FORMATS
from distillcli.recipe.yaml_file import short

# torch.save writes a zip archive (b"PK"); torch before 1.6 a pickle (b"\x80") or, before 0.4, a tar file
_TORCH_STARTS = (b"PK", b"\x80")
# files whose suffix says what they hold: model files other than torch.save's, and safetensors
_MODEL_SUFFIXES = {f.suffix for f in FORMATS.entries() if f.suffix != ".pt"} | {".safetensors"}
_TEXT_KINDS = {".yaml": "a YAML file", ".yml": "a YAML file", ".json": "a JSON file"}
# what torchvision's ImageFolder reads (torchvision.datasets.folder.IMG_EXTENSIONS)
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
_SHOWN = 5  # names listed per finding


def checkpoint_problems(where: str, checkpoint: str) -> list[str]:
    """``checkpoint`` of the model section ``where``: a file that holds weights."""
    try:
        path = Path(checkpoint).expanduser()
        if not path.is_file():
            return [f"{where}.checkpoint: file not found: {checkpoint}"]
        if path.suffix.lower() in _MODEL_SUFFIXES:
            return []
        with open(path, "rb") as f:
            head = f.read(512)
    except (OSError, RuntimeError, ValueError) as e:  # ~nouser/..., a name too long for the file system
        return [f"{where}.checkpoint: cannot be read ({e})"]
    if not head or head.startswith(_TORCH_STARTS) or head[257:262] == b"ustar":
        return []  # an empty file: left to the loader, which says so
    return [f"{where}.checkpoint: {checkpoint} {_looks_like(path, head)}, not a checkpoint; give the weights file "
            "(torch.save's .pt/.pth/.th, a .safetensors file, or a distill model file)"]


def _looks_like(path: Path, head: bytes) -> str:
    if path.suffix.lower() in _TEXT_KINDS:
        return f"is {_TEXT_KINDS[path.suffix.lower()]}"
    if b"\0" in head:
        return f"starts with the bytes {head[:8]!r}, which no PyTorch checkpoint does"
    first = (head.decode("utf-8", "replace").strip().splitlines() or [""])[0]
    return f"is a text file (its first line: {short(first)})"


def image_folder_problems(root: str) -> list[str]:
    """The layout root/{train,val}/<class>/<image>, the same classes in both: what is missing, if anything."""
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
                missing.append(f"class folders without images in {split}/: {_listing(empty)}")
    except OSError as e:
        return [f"data.root: {root!r} cannot be read ({e.strerror or e})"]
    if len(classes) == 2 and all(classes.values()) and classes["train"] != classes["val"]:
        for split, other in (("train", "val"), ("val", "train")):
            only = sorted(set(classes[split]) - set(classes[other]))
            if only:
                missing.append(f"classes only in {split}/: {_listing(only)}")
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


def _listing(names: list[str]) -> str:
    more = len(names) - _SHOWN
    return ", ".join(names[:_SHOWN]) + (f" and {more} more" if more > 0 else "")
