"""What a teacher's outputs depend on, as one key, and where the store lives (``folders``).

The key hashes: the teacher (its class and state_dict, buffers included: a changed file or a
teacher trained inside the recipe both change it), the data (the loader's fingerprint: a digest
of the in-memory images and their indices, or of the image files' paths, sizes and times), the
augmentation (mode, padding, random stream; the seed, unless there is no augmentation) and how
the outputs are packed. The augmentation epoch is not in the key: it names the entry's file.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from torch import nn

from distillcli.data.bundle import BatchLoader
from distillcli.data.loaders import AUGMENT_STREAM, PAD, tensor_bytes
from distillcli.teacher_cache.codec import codec_name
from distillcli.teacher_cache.folders import default_cache_dir  # noqa: F401  (where the store lives)

STORE_VERSION = 1


def teacher_digest(teacher: nn.Module) -> str:
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{type(teacher).__module__}.{type(teacher).__qualname__}\n".encode())
    for name, value in sorted(teacher.state_dict().items()):
        h.update(f"{name}\0{value.dtype}\0{tuple(value.shape)}\n".encode())
        h.update(tensor_bytes(value))
    return h.hexdigest()


def store_key(teacher: nn.Module, loader: BatchLoader, data_fingerprint: str, num_classes: int) -> tuple[str, dict]:
    """(key, what it was made of); ``about`` is written into every entry, for whoever looks."""
    augment = getattr(loader, "augment", "none")
    about: dict[str, Any] = {
        "store": STORE_VERSION, "teacher": teacher_digest(teacher), "teacher_class": type(teacher).__qualname__,
        "data": data_fingerprint, "samples": loader.num_samples, "augment": augment,
        "pad": PAD, "stream": AUGMENT_STREAM, "seed": getattr(loader, "seed", 0) if augment != "none" else None,
        "codec": codec_name(num_classes), "classes": num_classes,
    }
    return hashlib.sha256(json.dumps(about, sort_keys=True).encode()).hexdigest()[:32], about
