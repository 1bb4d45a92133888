"""What a dataset hands to the steps: the batch loaders and the facts models need."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Iterator, Protocol

from torch import Tensor


class BatchLoader(Protocol):
    """Yields ``(images, labels, indices)`` on the run's device.

    images: float32 in [0, 1], shape (N, C, H, W) (normalisation happens inside the model);
    labels: int64 (N,); indices: int64 (N,), the stable index of each sample in its split
    (teacher-output caching and exact resume rely on it). The order of a shuffled loader
    depends only on (seed, epoch), set by ``set_epoch``.
    """

    num_samples: int
    epoch: int

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor, Tensor]]: ...

    def iter_from(self, first_batch: int) -> Iterator[tuple[Tensor, Tensor, Tensor]]:
        """The current epoch's batches from batch ``first_batch`` on (resuming mid-epoch)."""
        ...

    def __len__(self) -> int: ...

    def set_epoch(self, epoch: int) -> None: ...

    def augment_epoch(self, epoch: int) -> int:
        """The epoch whose augmentation ``epoch`` reuses (``data.augment_replay``; 0 without augmentation)."""
        ...

    def fingerprint(self) -> str | None:
        """A digest of the samples this loader yields (not of their augmentation); None if unknown."""
        ...

    def shard(self, rank: int, world: int) -> None:
        """Under torchrun: yield only process ``rank``'s share of every batch."""
        ...


@dataclass
class DataBundle:
    """``val`` is the split final models are measured on (CIFAR's test set). ``select``, held
    out of the training data by ``data.val_split``, is what per-epoch choices look at; None
    when the option is off."""

    name: str
    train: BatchLoader
    val: BatchLoader
    num_classes: int
    class_names: list[str]
    mean: list[float]
    std: list[float]
    input_shape: tuple[int, int, int]  # (C, H, W)
    spec: dict = field(default_factory=dict)  # the DataConfig as a dict, recorded in model files
    select: BatchLoader | None = None

    def selection_only(self) -> "DataBundle | None":
        """The same data with ``val`` replaced by ``select`` (None without ``data.val_split``): every
        measure taken on it, the engine's and the steps' own, then looks at the share held out of
        the training data and never at the test split. What a search compares candidates on."""
        return replace(self, val=self.select) if self.select is not None else None

    def shard(self, rank: int, world: int) -> None:
        """Under torchrun: every loader yields only this process's share of each batch."""
        for loader in (self.train, self.val, self.select):
            if loader is not None:
                loader.shard(rank, world)
