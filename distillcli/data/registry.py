"""Datasets by name, with the optional ``data:`` keys each reads (torch-free). The builder,
``builder(cfg, device, seed, channels_last) -> DataBundle``, is imported when data is loaded."""

from __future__ import annotations

from dataclasses import dataclass

from distillcli.data.config import DataConfig
from distillcli.registry import Entry, Registry

# Keys that only some datasets read; a key set for a dataset that does not read it is an error.
OPTIONAL_KEYS = ("image_size", "num_classes", "channels", "train_size", "val_size", "download", "workers", "train_list",
                 "val_list", "interpolation", "crop_fraction")
_IMAGE_FILE_KEYS = ("image_size", "workers", "interpolation", "crop_fraction")


@dataclass(frozen=True, kw_only=True)
class DatasetEntry(Entry):
    keys: tuple[str, ...] = ()  # which of OPTIONAL_KEYS it reads
    on_disk: bool = False  # reads data.root (a folder or a file) from disk
    # photos: mean/std default to those the recipe's pretrained (timm) model expects, else ImageNet's
    photos: bool = False
    # "module:function" checking data.root's layout without torch: function(cfg) -> problems (validate)
    layout: str | None = None


def unused_keys(cfg: DataConfig, entry: DatasetEntry) -> list[str]:
    """Optional keys set to something other than their default that ``entry`` would not read."""
    fields = type(cfg).model_fields
    return [key for key in OPTIONAL_KEYS
            if key not in entry.keys and key in cfg.model_fields_set and getattr(cfg, key) != fields[key].default]


def _dataset(name: str, target: str, summary: str, keys: tuple[str, ...] = (), **caps: bool | str) -> DatasetEntry:
    return DatasetEntry(name=name, target=target, summary=summary, keys=keys, **caps)


_LAYOUT = "distillcli.data.layout:"

DATASETS: Registry[DatasetEntry] = Registry("dataset", DatasetEntry, [
    _dataset("cifar10", "distillcli.data.cifar:build_cifar10", "CIFAR-10 (python version), 32x32, 10 classes",
             ("download",), on_disk=True),
    _dataset("cifar100", "distillcli.data.cifar:build_cifar100", "CIFAR-100 (python version), 32x32, 100 classes",
             ("download",), on_disk=True),
    _dataset("digits", "distillcli.data.digits:build_digits", "scikit-learn's 8x8 digits (ships offline)",
             ("image_size",)),
    _dataset("imagefolder", "distillcli.data.folder:build_imagefolder", "root/train/<class>/*, root/val/<class>/*",
             _IMAGE_FILE_KEYS, on_disk=True, photos=True, layout=_LAYOUT + "image_folder_problems"),
    _dataset("csv", "distillcli.data.list_file:build_list_files",
             "images listed in root/train.csv and root/val.csv, one `path,label` line each",
             (*_IMAGE_FILE_KEYS, "train_list", "val_list"), on_disk=True, photos=True,
             layout=_LAYOUT + "list_file_problems"),
    _dataset("synthetic", "distillcli.data.synthetic:build_synthetic", "noisy class prototypes made in memory",
             ("image_size", "num_classes", "channels", "train_size", "val_size")),
], group="distillcli.datasets")
