"""Batch loaders that implement the ``BatchLoader`` protocol.

``TensorLoader`` serves datasets held in memory as uint8 tensors: shuffling and pad-crop/flip
augmentation are a handful of batched tensor ops, with no per-sample Python work.
``FolderLoader`` wraps a torch ``DataLoader`` for datasets read from disk and applies the same
batch-wise augmentation after collation, or augments each image where its worker decodes it
(``images``: random resized crops of image files from 64 px on).

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
from typing import Any, Callable, Iterator

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from distillcli.data.augment import PAD  # noqa: F401  (the padding of crop_flip, with the loaders it pads)
from distillcli.data.augment import (AUGMENT_STREAM, Augment, augment_epoch, batch_augmentation, crop_flip,
                                     epoch_generator)
from distillcli.data.images import AugmentedImages, SampleAugment, Unreadable, collate, unreadable_error

Batch = tuple[Tensor, Tensor, Tensor]


def _batches(n: int, batch_size: int, world: int, drop_short: bool) -> int:
    """Batches per epoch. With several processes a training epoch drops a last batch too
    small to give every process a sample (a process with no sample would stall the others)."""
    full, rest = divmod(n, batch_size)
    return full + (1 if rest and not (drop_short and world > 1 and rest < world) else 0)


def _memory_format(channels_last: bool) -> torch.memory_format:
    return torch.channels_last if channels_last else torch.contiguous_format


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
        drawn = batch_augmentation(n, self.augment, self.seed, self.augment_epoch(self.epoch), store)
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


class _Plan:
    """The batch sampler of a FolderLoader's DataLoader: the batches of the pass under way."""

    def __init__(self) -> None:
        self.batches: list[list[Any]] = []

    def __iter__(self) -> Iterator[list[Any]]:
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


class FolderLoader:
    """Batches of a map-style dataset whose items are ``(image, label, index)``, read by ``workers``
    processes (kept from pass to pass on CUDA), one pass at a time.

    Images are CHW tensors, uint8 (converted to [0, 1] on the device, which moves 4x fewer
    bytes) or already float in [0, 1]; an ``images.Unreadable`` item fails its batch with a
    DataError. Augmentation runs batch-wise after the move, or with ``sample_augment`` on each
    image in the workers (the items are then decoded images of any size).
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
        sample_augment: SampleAugment | None = None,
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
        self.sample_augment = sample_augment if augment != "none" else None
        self._plan, self._loader, self._passes = _Plan(), None, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def augment_epoch(self, epoch: int) -> int:
        return augment_epoch(self.augment, epoch, self.replay)

    def _data_loader(self) -> DataLoader:
        if self._loader is None:
            data = self.dataset if self.sample_augment is None else AugmentedImages(self.dataset, self.sample_augment)
            cuda = self.device.type == "cuda"
            self._loader = DataLoader(data, batch_sampler=self._plan, num_workers=self.workers, collate_fn=collate,
                                      pin_memory=cuda, persistent_workers=cuda and self.workers > 0)
        return self._loader

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
        batches, aug_epoch = self._global_batches(), self.augment_epoch(self.epoch)
        drawn = (batch_augmentation(self.num_samples, self.augment, self.seed, aug_epoch, torch.device("cpu"))
                 if self.sample_augment is None else None)
        shares = [list(torch.tensor(batch).tensor_split(self.world)[self.rank].tolist()) if self.world > 1
                  else batch for batch in batches[first_batch:]]
        self._plan.batches = shares
        if self.sample_augment is not None:  # each image's draws: from (seed, augmentation epoch, position)
            g = epoch_generator(self.seed, aug_epoch, AUGMENT_STREAM)
            pass_seed = int(torch.randint(1 << 62, (1,), generator=g))
            self._plan.batches = [[(pos, pass_seed) for pos in share] for share in shares]
        self._passes += 1
        this_pass = self._passes
        for share, batch in zip(shares, self._data_loader()):
            if self._passes != this_pass:
                raise RuntimeError("a FolderLoader serves one pass at a time; another pass began during this one")
            if isinstance(batch[0], Unreadable):
                raise unreadable_error(batch)
            x, y, idx = batch
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
