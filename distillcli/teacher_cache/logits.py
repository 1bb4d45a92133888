"""The one place objectives get the teacher's logits for a batch: from the store or the teacher.

``set_epoch`` (the Trainer calls it through the objective at each epoch start) picks the
augmentation epoch's entry; a complete entry serves every batch (a hit), otherwise the teacher
runs (a miss) and, with a store, the epoch's outputs are collected and written once every sample
was seen. With a store the objectives always get the packed-then-unpacked logits (see codec), so
a hit and a miss give the same loss.
"""

from __future__ import annotations

import time
from typing import Callable, Literal

import torch
from torch import Tensor, nn

from distillcli.data.bundle import BatchLoader
from distillcli.errors import DistillError, OptionError
from distillcli.record import TeacherCacheRecord
from distillcli.teacher_cache.codec import decode, encode
from distillcli.teacher_cache.key import store_key
from distillcli.teacher_cache.store import Entry, Store

CacheMode = Literal["auto", "off", "required"]


def freeze(teacher: nn.Module) -> nn.Module:
    """Eval mode, no gradients: the teacher only ever runs forward."""
    teacher.eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher


class TeacherLogits:
    def __init__(self, teacher: nn.Module, store: Store | None = None, loader: BatchLoader | None = None,
                 num_classes: int = 0, stats: TeacherCacheRecord | None = None) -> None:
        self.teacher = freeze(teacher)
        self.store, self.loader, self.num_classes = store, loader, num_classes
        self.stats = stats if stats is not None else TeacherCacheRecord(mode="off")
        self.entry: Entry | None = None
        self.aug_epoch: int | None = None
        self._parts: list[tuple[Tensor, dict[str, Tensor]]] = []
        self._seen = 0

    def set_epoch(self, epoch: int) -> None:
        if self.store is None or self.loader is None:
            return
        aug_epoch = self.loader.augment_epoch(epoch)
        if aug_epoch != self.aug_epoch or self.entry is None:
            self.aug_epoch, self._parts, self._seen = aug_epoch, [], 0
            self.entry = self.store.load(aug_epoch)
        if self.entry is not None:
            self.stats.hits += 1
        else:
            self.stats.misses += 1
        self.stats.disk_bytes = self.store.disk_bytes()

    def __call__(self, images: Tensor, indices: Tensor) -> Tensor:
        if self.entry is not None:
            if self.entry.ids.device != indices.device:
                self.entry = self.entry.to(indices.device)
            rows = self.entry.rows(indices)
            if rows is not None:
                return decode(rows, self.num_classes)
        logits = self.forward(images)
        if self.store is None:
            return logits
        packed = encode(logits)
        if self.entry is None and self.aug_epoch is not None:
            self._collect(indices, packed)
        return decode(packed, self.num_classes)

    def forward(self, images: Tensor) -> Tensor:
        """The teacher itself; its time counts on the CPU (a GPU runs asynchronously: not timed)."""
        t0 = time.perf_counter()
        with torch.no_grad():
            logits = self.teacher(images)
        if logits.device.type == "cpu":
            self.stats.teacher_seconds = (self.stats.teacher_seconds or 0.0) + time.perf_counter() - t0
        return logits

    def _collect(self, indices: Tensor, packed: dict[str, Tensor]) -> None:
        """Keep a batch of the epoch; write the epoch once every sample was seen (only then)."""
        assert self.store is not None and self.loader is not None and self.aug_epoch is not None
        self._parts.append((indices, packed))
        self._seen += len(indices)
        if self._seen < self.loader.num_samples:
            return
        # Under autocast (bf16 training) the CPU's torch.cat refuses the stored fp16 arrays: join them outside it.
        with torch.autocast(indices.device.type, enabled=False):
            ids = torch.cat([i for i, _ in self._parts])
            arrays = {k: torch.cat([p[k] for _, p in self._parts]) for k in self._parts[0][1]}
        self._parts = []
        try:
            self.store.save(self.aug_epoch, ids, arrays)
        except DistillError as e:  # the disk is full or read-only: train on, without storing
            self.store.warn(f"teacher outputs not stored: {e.message}")
        order = ids.argsort()
        self.entry = Entry(ids[order], {k: v[order] for k, v in arrays.items()})
        self.stats.disk_bytes = self.store.disk_bytes()


def open_store(teacher: nn.Module, mode: CacheMode, loader: BatchLoader, num_classes: int,
               cache_dir: str | None, world: int, notice: Callable[[str], None],
               features: bool = False) -> Store | None:
    """The store these outputs go to, or None (``off``, or ``auto`` where a store cannot serve,
    with a one-line notice); ``required`` where it cannot serve is an OptionError."""
    if mode == "off":
        return None
    fingerprint = None if features or world > 1 else loader.fingerprint()
    why = ("feature terms (fitnet, at) read the teacher's layers, which stored logits cannot give" if features
           else f"the store serves one process, and this run has {world}" if world > 1
           else "this dataset has no fingerprint to key the outputs by" if fingerprint is None
           else "no cache directory is set" if cache_dir is None else None)
    if why is not None:
        if mode == "required":
            raise OptionError(f"teacher_cache: required, but {why}",
                              "set teacher_cache: auto (the teacher then runs when it must) or off")
        notice(f"teacher outputs are computed, not stored: {why}")
        return None
    assert fingerprint is not None and cache_dir is not None
    key, about = store_key(teacher, loader, fingerprint, num_classes)
    return Store(cache_dir, key, about, notice)
