"""Images listed in text files: ``root/train.csv`` and ``root/val.csv`` (``data.train_list`` and
``data.val_list``), one image per line, ``path,label`` (or ``path label``), the path relative to
``data.root``. A first line that names no image file (``path,label``) is a header; blank lines and
lines starting with ``#`` are skipped. Labels are class indices when every label of both lists is
a whole number, else class names (sorted, as an image folder's class folders). The images are read
like an image folder's (``folder.image_bundle``): decoded and augmented in the loader's workers.
"""

from __future__ import annotations

import torch

from distillcli.data.bundle import DataBundle
from distillcli.data.config import DataConfig
from distillcli.data.folder import image_bundle
from distillcli.data.list_rows import read_lists


def build_list_files(cfg: DataConfig, device: torch.device, seed: int, channels_last: bool) -> DataBundle:
    train, val = read_lists(cfg)
    return image_bundle(cfg, device, seed, channels_last, train, val)
