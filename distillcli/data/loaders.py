"""Batch loaders that implement the ``BatchLoader`` protocol.

``TensorLoader`` serves datasets held in memory as uint8 tensors: shuffling and pad-crop/flip
augmentation are a handful of batched tensor ops, with no per-sample Python work.
``FolderLoader`` wraps a torch ``DataLoader`` for datasets read from disk and applies the same
batch-wise augmentation after collation.

Randomness comes from generators seeded from (seed, epoch) only, so epoch ``e`` has the same
order and augmentation whether or not epochs before it ran, and ``iter_from(k)`` starts an
epoch at its k-th batch with exactly the batches an uninterrupted epoch would have had there
(exact resume relies on both). The order shuffles with the epoch; a sample's crop and flip are
a function of (seed, augmentation epoch, the sample's position in the split) alone, where the
augmentation epoch is ``epoch mod replay`` with ``data.augment_replay`` (0 without augmentation):
so the teacher's outputs for a sample and augmentation epoch never change, and can be stored.

Under distributed training every process draws the same global order and augmentation and
keeps its share of each global batch (``shard``): the union of the shards is the batch one
process would have seen, so the recipe's batch_size means the same thing on any number of
processes.
"""

from __future__ import annotations

import hashlib
from typing import Callable, Iterator, Literal

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

Augment = Literal["standard", "crop", "none"]
Batch = tuple[Tensor, Tensor, Tensor]
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


def _batches(n: int, batch_size: int, world: int, drop_short: bool) -> int:
    """Batches per epoch. With several processes a training epoch drops a last batch too
    small to give every process a sample (a process with no sample would stall the others)."""
    full, rest = divmod(n, batch_size)
    return full + (1 if rest and not (drop_short and world > 1 and rest < world) else 0)


def _memory_format(channels_last: bool) -> torch.memory_format:
    return torch.channels_last if channels_last else torch.contiguous_format


def augment_epoch(augment: Augment, epoch: int, replay: int | None) -> int:
    """The epoch whose augmentation ``epoch`` uses: ``epoch mod replay`` (0 without augmentation)."""
    if augment == "none":
        return 0
    return epoch % replay if replay else epoch


def _augmentation(n: int, augment: Augment, seed: int, aug_epoch: int,
                  device: torch.device) -> tuple[Tensor, Tensor | None] | None:
    """Crops and flips of all ``n`` samples of an augmentation epoch, indexed by position in the split."""
    if augment == "none":
        return None
    return draw_augmentation(n, augment, epoch_generator(seed, aug_epoch, AUGMENT_STREAM), device)


def tensor_bytes(t: Tensor) -> bytes:
    """A tensor's values as bytes in row-major order, whatever its dtype, device and memory format."""
    flat = t.detach().to("cpu").reshape(-1)
    return flat.view(torch.uint8).numpy().tobytes() if flat.dtype != torch.bool else flat.numpy().tobytes()


def _digest(*tensors: Tensor | None) -> str:
    h = hashlib.blake2b(digest_size=16)
    for t in tensors:
        if t is not None:
            h.update(f"{t.dtype}{tuple(t.shape)}".encode())
            h.update(tensor_bytes(t))
    return h.hexdigest()


class TensorLoader:
    """Batches of an in-memory uint8 dataset; images (N, C, H, W), labels (N,).

    The data stays on the CPU, or on the device when it is a GPU (then nothing crosses the
    bus per batch). Batches are moved as uint8 and converted to float on the device.
    """

    def __init__(
        self,
        images: Tensor,
        labels: Tensor,
        batch_size: int,
        *,
        shuffle: bool = False,
        augment: Augment = "none",
        seed: int = 0,
        device: torch.device | str = "cpu",
        channels_last: bool = False,
        ids: Tensor | None = None,
        replay: int | None = None,
    ) -> None:
        """``ids``: the stable index yielded with each sample (default: its position); a split
        carved out of a larger one yields the samples' indices in that one. ``replay``: epoch e
        reuses the augmentation of epoch e mod replay."""
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise ValueError(f"images must be uint8 (N, C, H, W), got {images.dtype} {tuple(images.shape)}")
        if labels.shape != (images.shape[0],):
            raise ValueError(f"labels must have shape ({images.shape[0]},), got {tuple(labels.shape)}")
        if ids is not None and ids.shape != labels.shape:
            raise ValueError(f"ids must have shape ({images.shape[0]},), got {tuple(ids.shape)}")
        self.device = torch.device(device)
        store = self.device if self.device.type == "cuda" else torch.device("cpu")
        self.images = images.to(store).contiguous()
        self.labels = labels.to(store, torch.int64)
        self.ids = None if ids is None else ids.to(store, torch.int64)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.augment: Augment = augment
        self.seed = seed
        self.channels_last = channels_last
        self.num_samples = images.shape[0]
        self.replay = replay
        self.epoch = 0
        self.rank, self.world = 0, 1
        self._fingerprint: str | None = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def augment_epoch(self, epoch: int) -> int:
        return augment_epoch(self.augment, epoch, self.replay)

    def fingerprint(self) -> str:
        """A digest of the images and the indices yielded with them (not of the augmentation)."""
        if self._fingerprint is None:
            self._fingerprint = _digest(self.images, self.ids)
        return self._fingerprint

    def shard(self, rank: int, world: int) -> None:
        """Keep this process's share of every batch (see the module docstring)."""
        self.rank, self.world = rank, world

    def __len__(self) -> int:
        return _batches(self.num_samples, self.batch_size, self.world, self.shuffle)

    def __iter__(self) -> Iterator[Batch]:
        return self.iter_from(0)

    def iter_from(self, first_batch: int) -> Iterator[Batch]:
        """The epoch's batches from batch ``first_batch`` on."""
        n, store, device = self.num_samples, self.images.device, self.device
        fmt = _memory_format(self.channels_last)
        order = torch.randperm(n, generator=epoch_generator(self.seed, self.epoch)).to(store) if self.shuffle else None
        drawn = _augmentation(n, self.augment, self.seed, self.augment_epoch(self.epoch), store)
        for b in range(first_batch, len(self)):
            start = b * self.batch_size
            pos = torch.arange(start, min(start + self.batch_size, n), device=store)
            if self.world > 1:
                pos = pos.tensor_split(self.world)[self.rank]
            idx = pos if order is None else order[pos]
            x, y = self.images[idx], self.labels[idx]
            if drawn is not None:
                offsets, flips = drawn
                x = crop_flip(x, offsets[:, idx], flips[idx] if flips is not None else None)
            x = x.to(device, non_blocking=True).to(torch.float32, memory_format=fmt).div_(255)
            ids = idx if self.ids is None else self.ids[idx]
            yield x, y.to(device, non_blocking=True), ids.to(device, non_blocking=True)


class FolderLoader:
    """Batches of a map-style dataset whose items are ``(image, label, index)``.

    Images are CHW tensors, uint8 (converted to [0, 1] on the device, which moves 4x fewer
    bytes) or already float in [0, 1]. Augmentation runs batch-wise after the move.
    """

    def __init__(
        self,
        dataset: Dataset,
        batch_size: int,
        *,
        shuffle: bool = False,
        augment: Augment = "none",
        seed: int = 0,
        device: torch.device | str = "cpu",
        channels_last: bool = False,
        workers: int = 0,
        replay: int | None = None,
        describe: Callable[[], str] | None = None,
    ) -> None:
        """``describe``: a digest of the samples (e.g. their files' names, sizes and times), the
        loader's ``fingerprint``; without it the loader has none. ``replay`` as in TensorLoader."""
        self.dataset = dataset
        self.replay, self.describe = replay, describe
        self._fingerprint: str | None = None
        self.device = torch.device(device)
        self.num_samples = len(dataset)  # type: ignore[arg-type]
        self.augment: Augment = augment
        self.seed = seed
        self.channels_last = channels_last
        self.epoch = 0
        self.batch_size, self.shuffle, self.workers = batch_size, shuffle, workers
        self.rank, self.world = 0, 1

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def augment_epoch(self, epoch: int) -> int:
        return augment_epoch(self.augment, epoch, self.replay)

    def fingerprint(self) -> str | None:
        if self._fingerprint is None and self.describe is not None:
            self._fingerprint = self.describe()
        return self._fingerprint

    def shard(self, rank: int, world: int) -> None:
        """Keep this process's share of every batch (see the module docstring)."""
        self.rank, self.world = rank, world

    def __len__(self) -> int:
        return _batches(self.num_samples, self.batch_size, self.world, self.shuffle)

    def __iter__(self) -> Iterator[Batch]:
        return self.iter_from(0)

    def _global_batches(self) -> list[list[int]]:
        order = (torch.randperm(self.num_samples, generator=epoch_generator(self.seed, self.epoch)).tolist()
                 if self.shuffle else list(range(self.num_samples)))
        return [order[b * self.batch_size:(b + 1) * self.batch_size] for b in range(len(self))]

    def iter_from(self, first_batch: int) -> Iterator[Batch]:
        """The epoch's batches from batch ``first_batch`` on; only this process's share is read."""
        device, fmt = self.device, _memory_format(self.channels_last)
        batches = self._global_batches()
        drawn = _augmentation(self.num_samples, self.augment, self.seed, self.augment_epoch(self.epoch),
                              torch.device("cpu"))
        shares = [list(torch.tensor(batch).tensor_split(self.world)[self.rank].tolist()) if self.world > 1
                  else batch for batch in batches[first_batch:]]
        loader = DataLoader(self.dataset, batch_sampler=shares, num_workers=self.workers,
                            pin_memory=self.device.type == "cuda")
        for share, (x, y, idx) in zip(shares, loader):
            x = x.to(device, non_blocking=True)
            if drawn is not None:
                offsets, flips = drawn
                pos = torch.tensor(share)  # positions in the split: the augmentation's index
                x = crop_flip(x, offsets[:, pos].to(device), flips[pos].to(device) if flips is not None else None)
            if x.dtype == torch.uint8:
                x = x.to(torch.float32, memory_format=fmt).div_(255)
            else:
                x = x.to(torch.float32).contiguous(memory_format=fmt)
            yield x, y.to(device, non_blocking=True), idx.to(device, non_blocking=True)
