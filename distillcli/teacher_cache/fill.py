"""Fill a store ahead of a run (``distill cache fill``): the teacher alone, at its fastest.

Inference mode, large batches, channels_last, and on a GPU bfloat16 autocast when it is exact
enough on the first batch (``BF16_TOLERANCE``). The outputs go through ``TeacherLogits``, the
same path a run's misses take, so a run reads exactly what it would have written itself, give or
take the float16 rounding of a differently computed logit.
"""

from __future__ import annotations

import contextlib
from typing import Iterable

import torch
from torch import Tensor, nn

from distillcli.data.bundle import BatchLoader
from distillcli.progress import Progress
from distillcli.record import TeacherCacheRecord
from distillcli.teacher_cache.logits import TeacherLogits, freeze
from distillcli.teacher_cache.store import Store

BF16_TOLERANCE = 1e-2  # largest difference of any softmax probability (T = 1) from float32's


def bf16_exact_enough(teacher: nn.Module, images: Tensor) -> bool:
    """On a GPU with bfloat16, whether autocast changes no probability by more than the tolerance."""
    if images.device.type != "cuda" or not torch.cuda.is_bf16_supported():
        return False
    with torch.inference_mode():
        exact = teacher(images).float().softmax(1)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            fast = teacher(images).float().softmax(1)
    return bool((exact - fast).abs().max() <= BF16_TOLERANCE)


def fill(teacher: nn.Module, loader: BatchLoader, store: Store, aug_epochs: Iterable[int], num_classes: int,
         progress: Progress) -> TeacherCacheRecord:
    """Compute and write every entry of ``aug_epochs`` the store lacks (its batch size is the loader's)."""
    stats = TeacherCacheRecord(mode="required", key=store.folder.name)
    source = TeacherLogits(freeze(teacher), store, loader, num_classes, stats)
    autocast: contextlib.AbstractContextManager | None = None  # decided on the first batch computed
    for epoch in sorted(set(aug_epochs)):
        loader.set_epoch(epoch)
        source.set_epoch(epoch)  # an augmentation epoch is its own augmentation epoch
        if source.entry is not None:
            continue
        progress.start(f"teacher outputs, augmentation epoch {epoch}", len(loader))
        with torch.inference_mode():
            for done, (images, _, indices) in enumerate(loader, start=1):
                if autocast is None:
                    fast = bf16_exact_enough(teacher, images)
                    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if fast else contextlib.nullcontext()
                    if fast:
                        progress.message("teacher outputs: bfloat16 autocast (exact enough on the first batch)")
                with autocast:
                    source(images, indices)
                progress.update(done)
        progress.finish()
    return stats
