"""Where and how a run executes: the device, random seeds and the allocator.

Kept in one module so that device handling, seeding (and later distributed set-up) have a
single home. ``keep_freed_memory`` keeps glibc from returning freed memory to the OS after
every training step: with the default thresholds each batch's large activation buffers are
mmap'ed and unmapped again, and the page faults cost 10-30 % of a CPU training step on small
CNNs (the environment variables MALLOC_MMAP_THRESHOLD_ / MALLOC_TRIM_THRESHOLD_ do the same).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import random
import sys

import numpy as np
import torch

from distillcli.errors import OptionError

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_MMAP_MAX = 32 * 1024 * 1024  # glibc's ceiling for the mmap threshold on 64-bit systems


def keep_freed_memory() -> bool:
    """Apply the thresholds; True when glibc accepted them (False elsewhere, harmlessly)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    ok = mallopt(_M_MMAP_THRESHOLD, _MMAP_MAX) == 1
    return bool(mallopt(_M_TRIM_THRESHOLD, 2**31 - 1) == 1 and ok)


def seed_everything(seed: int) -> None:
    """Seed every random generator a run touches."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_device(name: str) -> torch.device:
    """auto -> cuda, then mps, then cpu; an unavailable explicit device is an error."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise OptionError(f"device {name!r} was asked for, but this machine has no usable CUDA GPU",
                              "use --device cpu (or auto)")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise OptionError(f"device {name!r} does not exist: {torch.cuda.device_count()} GPU(s) visible",
                              f"use cuda:0 .. cuda:{torch.cuda.device_count() - 1}")
    if device.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise OptionError("device 'mps' was asked for, but MPS is not available here", "use --device cpu (or auto)")
    return device
