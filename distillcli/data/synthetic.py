"""A small learnable dataset for tests: noisy copies of one fixed prototype image per class."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from distillcli.data.bundle import DataBundle
from distillcli.data.config import DataConfig
from distillcli.data.datasets import tensor_bundle

DATA_SEED = 1234  # fixed: the data is the same for every run seed
NOISE = 0.15


def make_synthetic(
    num_classes: int, channels: int, image_size: int, train_size: int, val_size: int
) -> tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor]]:
    """(train, val) uint8 images (N, C, S, S) and int64 labels, classes in turn (balanced).

    Prototypes are random 4x4 colour fields upsampled to S x S: smooth, so they stay
    recognisable under crops and pooling.
    """
    g = torch.Generator().manual_seed(DATA_SEED)
    coarse = torch.rand(num_classes, channels, 4, 4, generator=g)
    prototypes = F.interpolate(coarse, size=(image_size, image_size), mode="bilinear", align_corners=False)

    def split(n: int) -> tuple[Tensor, Tensor]:
        labels = torch.arange(n) % num_classes
        noisy = prototypes[labels] + NOISE * torch.randn(n, channels, image_size, image_size, generator=g)
        return noisy.clamp_(0, 1).mul_(255).round_().to(torch.uint8), labels

    return split(train_size), split(val_size)


def build_synthetic(cfg: DataConfig, device: torch.device, seed: int, channels_last: bool) -> DataBundle:
    num_classes, channels = cfg.num_classes or 10, cfg.channels or 3
    train, val = make_synthetic(num_classes, channels, cfg.image_size or 32, cfg.train_size or 512, cfg.val_size or 128)
    return tensor_bundle(
        cfg, device, seed, channels_last, train=train, val=val, class_names=[f"class{i}" for i in range(num_classes)],
        mean=[0.5] * channels, std=[0.5] * channels, default_augment="none",
    )
