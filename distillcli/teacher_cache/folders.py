"""The store's folders on disk, without torch: where they live, what each holds, and its size cap.

``<cache dir>/teacher-outputs/<key>/aug-<epoch>.bin``. A folder's modification time is when a
run last used it (writing an entry renames it into the folder; ``Store.load`` touches it), so the
least recently used folders are removed first. Removing a folder never fails a caller: a file
that cannot be removed stays. A reader reads an entry whole (``read_bytes``), so a file removed
under another run is only recomputed by it; the folder of the store being written is never removed.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

from distillcli.errors import OptionError

SUBDIR = "teacher-outputs"
DEFAULT_MAX_BYTES = 20 * 2**30
MAX_BYTES_ENV = "DISTILL_CACHE_MAX_BYTES"
IN_FLIGHT_S = 3600  # a temporary file younger than this may be another process's write in progress: kept
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*$", re.IGNORECASE)


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/distill``, else ``~/.cache/distill``."""
    base = os.environ.get("XDG_CACHE_HOME")
    return (Path(base) if base else Path.home() / ".cache") / "distill"


def parse_size(text: str) -> int:
    """'2G', '500M', '1.5GiB', '4096' -> bytes (K, M, G, T are powers of 1024); ValueError otherwise."""
    match = _SIZE.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a size")
    return int(float(match.group(1)) * 1024 ** " kmgt".index(match.group(2).lower() or " "))


def max_bytes() -> int:
    """The cap on all stores together: ``$DISTILL_CACHE_MAX_BYTES``, else 20 GiB."""
    text = os.environ.get(MAX_BYTES_ENV)
    if text is None:
        return DEFAULT_MAX_BYTES
    try:
        return parse_size(text)
    except ValueError:
        raise OptionError(f"{MAX_BYTES_ENV}={text!r} is not a size",
                          "give bytes or a size such as 500M or 20G, or unset it (default 20G)") from None


@dataclass(frozen=True)
class Folder:
    """One key's folder: its entries (complete augmentation epochs), bytes on disk, last use (epoch seconds)."""

    path: Path
    entries: int
    bytes: int
    last_used: float

    @property
    def key(self) -> str:
        return self.path.name


def folders(cache_dir: Path) -> list[Folder]:
    """Every key's folder under ``cache_dir``, least recently used first."""
    root = cache_dir / SUBDIR
    if not root.is_dir():
        return []
    found = []
    for path in root.iterdir():
        with contextlib.suppress(OSError):  # removed meanwhile, or unreadable: not a store to count
            if path.is_dir() and not path.is_symlink():
                files = [p for p in path.iterdir() if p.is_file()]
                found.append(Folder(path, sum(p.name.startswith("aug-") and p.suffix == ".bin" for p in files),
                                    sum(p.stat().st_size for p in files), path.stat().st_mtime))
    return sorted(found, key=lambda f: (f.last_used, f.key))


def mark_used(folder: Path) -> None:
    with contextlib.suppress(OSError):  # a read-only cache is still readable
        os.utime(folder)


def remove(folder: Folder) -> int:
    """Delete a folder's files (not a recent temporary file: a write in progress) and then the folder
    if it is empty; returns the bytes freed."""
    freed, now = 0, time.time()
    for path in folder.path.iterdir():
        with contextlib.suppress(OSError):
            stat = path.stat()
            if path.suffix == ".tmp" and now - stat.st_mtime < IN_FLIGHT_S:
                continue
            path.unlink()
            freed += stat.st_size
    with contextlib.suppress(OSError):
        folder.path.rmdir()
    return freed


def least_recently_used(cache_dir: Path, limit: int, keep: str | None = None) -> list[Folder]:
    """The folders to remove, least recently used first, to bring the total to ``limit`` bytes or
    below (the folder of the key ``keep``, the one in use, is never one of them)."""
    every = folders(cache_dir)
    over = sum(f.bytes for f in every) - limit
    chosen = []
    for folder in every:
        if over <= 0:
            break
        if folder.key != keep:
            chosen.append(folder)
            over -= folder.bytes
    return chosen
