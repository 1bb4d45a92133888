"""The entries of one key on disk: ``<cache dir>/teacher-outputs/<key>/aug-<epoch>.bin``.

An entry holds one augmentation epoch complete: every sample's packed logits, sorted by sample
index. It is written once the epoch is complete, atomically; a partial epoch (a run stopped or
resumed mid-epoch) is kept in memory only and never written, so nothing on disk is partial
except by damage, and damage is detected (see entry_file), warned about and recomputed. Writing
an entry keeps all stores together under their size cap (see folders).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch
from torch import Tensor

from distillcli.report.markdown import human_bytes
from distillcli.teacher_cache.entry_file import CorruptEntry, read_entry, write_entry
from distillcli.teacher_cache.folders import MAX_BYTES_ENV, SUBDIR, least_recently_used, mark_used, max_bytes, remove


class Entry:
    """One augmentation epoch: packed arrays whose rows are the samples, sorted by ``ids``."""

    def __init__(self, ids: Tensor, arrays: dict[str, Tensor]) -> None:
        self.ids, self.arrays = ids, arrays

    def to(self, device: torch.device) -> "Entry":
        return Entry(self.ids.to(device), {k: v.to(device) for k, v in self.arrays.items()})

    def rows(self, indices: Tensor) -> dict[str, Tensor] | None:
        """The arrays' rows of these samples; None if a sample is missing (then it is no hit)."""
        pos = torch.searchsorted(self.ids, indices).clamp_(max=len(self.ids) - 1)
        if not bool((self.ids[pos] == indices).all()):
            return None
        return {k: v[pos] for k, v in self.arrays.items()}


class Store:
    def __init__(self, root: Path, key: str, about: dict, warn: Callable[[str], None]) -> None:
        self.root = Path(root)
        self.folder = self.root / SUBDIR / key
        self.about, self.warn = about, warn
        self.max_bytes = max_bytes()

    def path(self, aug_epoch: int) -> Path:
        return self.folder / f"aug-{aug_epoch}.bin"

    def load(self, aug_epoch: int) -> Entry | None:
        """The complete entry, or None (absent; or corrupt or not this key's: warned, to be recomputed)."""
        path = self.path(aug_epoch)
        if self.folder.is_dir():
            mark_used(self.folder)  # the least recently used stores go first when over the cap
        if not path.is_file():
            return None
        try:
            about, arrays = read_entry(path)
            ids = arrays.pop("ids")
            n = self.about["samples"]
            if about != {**self.about, "aug_epoch": aug_epoch} or len(ids) != n or \
                    any(len(a) != n for a in arrays.values()) or "values" not in arrays:
                raise CorruptEntry("it does not hold this key's outputs")
        except (CorruptEntry, OSError) as e:
            self.warn(f"teacher outputs {path} are unusable ({e}); computing them again")
            return None
        return Entry(ids, arrays)

    def save(self, aug_epoch: int, ids: Tensor, arrays: dict[str, Tensor]) -> int:
        """Write a complete epoch (rows in any order); returns the file's size."""
        order = ids.argsort()
        packed = {"ids": ids[order].long(), **{k: v[order] for k, v in arrays.items()}}
        size = write_entry(self.path(aug_epoch), {**self.about, "aug_epoch": aug_epoch}, packed)
        self._keep_under_cap()
        return size

    def _keep_under_cap(self) -> None:
        """Over the cap, remove the least recently used other keys' folders, in one line of progress."""
        evicted = least_recently_used(self.root, self.max_bytes, keep=self.folder.name)
        if evicted:
            freed = sum(remove(f) for f in evicted)
            self.warn(f"teacher-output stores over their {human_bytes(self.max_bytes)} cap: removed the {len(evicted)} "
                      f"least recently used ({human_bytes(freed)}; {MAX_BYTES_ENV} sets the cap)")

    def disk_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.folder.glob("aug-*.bin")) if self.folder.is_dir() else 0
