"""Seeded randomness and CIFAR's batch-wise augmentation (pad-4 random crop and flip).

Every draw comes from a generator seeded from (seed, epoch, stream) alone: see ``loaders``.
"""

from __future__ import annotations

import hashlib
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

Augment = Literal["standard", "crop", "none"]
PAD = 4
AUGMENT_STREAM = 1  # epoch_generator stream of the per-sample augmentation draws (0: the order)


def epoch_generator(seed: int, epoch: int, stream: int = 0) -> torch.Generator:
    """A CPU generator determined by (seed, epoch, stream) alone; streams keep uses apart."""
    digest = hashlib.blake2b(f"{seed}/{epoch}/{stream}".encode(), digest_size=8).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest, "little"))


def draw_augmentation(
    n: int, augment: Augment, g: torch.Generator, device: torch.device
) -> tuple[Tensor, Tensor | None]:
    """Per-sample crop offsets (2, n) in [0, 2*PAD] and flip flags (n,) (None unless standard)."""
    offsets = torch.randint(0, 2 * PAD + 1, (2, n), generator=g).to(device)
    flips = (torch.rand(n, generator=g) < 0.5).to(device) if augment == "standard" else None
    return offsets, flips


def crop_flip(x: Tensor, offsets: Tensor, flips: Tensor | None) -> Tensor:
    """Zero-pad a batch by PAD, take one crop per sample and mirror the flagged ones.

    Output pixel (i, j) of sample b reads padded pixel (oy_b + i, ox_b + j), or column
    ox_b + W-1-j when flipped, so crop and flip are a single gather over the batch.
    """
    b, c, h, w = x.shape
    wp = w + 2 * PAD
    padded = F.pad(x, (PAD, PAD, PAD, PAD)).view(b, c, -1)
    oy, ox = offsets[0, :, None], offsets[1, :, None]
    rows = oy + torch.arange(h, device=x.device)
    cols = ox + torch.arange(w, device=x.device)
    if flips is not None:
        cols = torch.where(flips[:, None], ox + torch.arange(w - 1, -1, -1, device=x.device), cols)
    index = (rows[:, :, None] * wp + cols[:, None, :]).view(b, 1, h * w).expand(b, c, h * w)
    return padded.gather(2, index).view(b, c, h, w)


def augment_epoch(augment: Augment, epoch: int, replay: int | None) -> int:
    """The epoch whose augmentation ``epoch`` uses: ``epoch mod replay`` (0 without augmentation)."""
    if augment == "none":
        return 0
    return epoch % replay if replay else epoch


def batch_augmentation(n: int, augment: Augment, seed: int, aug_epoch: int,
                        device: torch.device) -> tuple[Tensor, Tensor | None] | None:
    """Crops and flips of all ``n`` samples of an augmentation epoch, indexed by position in the split."""
    if augment == "none":
        return None
    return draw_augmentation(n, augment, epoch_generator(seed, aug_epoch, AUGMENT_STREAM), device)
