"""The 8x8 handwritten digits bundled with scikit-learn: a real dataset that needs no download."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from distillcli.data.bundle import DataBundle
from distillcli.data.config import DataConfig
from distillcli.data.datasets import tensor_bundle

SPLIT_SEED = 0  # fixed, not the run seed: the validation set must never change
VAL_FRACTION = 0.2


def load_digits_split(image_size: int) -> tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor]]:
    """(train, val) as uint8 images (N, 1, S, S) and int64 labels, stratified 80/20."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    pixels = torch.from_numpy(digits.images).float().mul_(255 / 16).unsqueeze(1)  # 0..16 -> 0..255
    if image_size != pixels.shape[-1]:
        size = (image_size, image_size)
        pixels = F.interpolate(pixels, size=size, mode="bilinear", align_corners=False, antialias=False)
    images = pixels.round_().clamp_(0, 255).to(torch.uint8)
    labels = torch.from_numpy(digits.target).long()
    train_idx, val_idx = train_test_split(
        np.arange(len(labels)), test_size=VAL_FRACTION, stratify=digits.target, random_state=SPLIT_SEED
    )
    # Sorted, so that first-N subsets follow the original (class-interleaved) order.
    train_idx, val_idx = torch.from_numpy(np.sort(train_idx)), torch.from_numpy(np.sort(val_idx))
    return (images[train_idx], labels[train_idx]), (images[val_idx], labels[val_idx])


def build_digits(cfg: DataConfig, device: torch.device, seed: int, channels_last: bool) -> DataBundle:
    train, val = load_digits_split(cfg.image_size or 32)
    scaled = train[0].double() / 255
    return tensor_bundle(
        cfg, device, seed, channels_last, train=train, val=val, class_names=[str(d) for d in range(10)],
        mean=[scaled.mean().item()], std=[scaled.std(correction=0).item()], default_augment="crop",
    )
