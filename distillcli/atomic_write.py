"""Atomic writes: write to a temporary name beside the target, then rename over it."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from distillcli.errors import OutputError

# mkstemp names: ".<target name>.<8 random letters, digits or _>.tmp"
_TEMP_NAME = re.compile(r"\..+\.[a-z0-9_]{8}\.tmp")


@contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yields a temporary path in the target's folder; renames it to target on success.

    An OSError (disk full, no permission, read-only file system, name too long ...) becomes
    an OutputError naming the target; the temporary file is removed and a previous file at
    the target is left as it was.
    """
    target = Path(target)
    tmp_path: Path | None = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        os.close(fd)
        tmp_path = Path(tmp)
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
        os.replace(tmp_path, target)
    except OSError as e:
        raise _output_error(target, e) from None
    finally:
        if tmp_path is not None:
            with contextlib.suppress(OSError):
                tmp_path.unlink(missing_ok=True)


def _output_error(target: Path, e: OSError) -> OutputError:
    cause = e.strerror or str(e) or type(e).__name__
    hints = {
        errno.ENOSPC: "free some disk space",
        errno.EDQUOT: "free some space within your disk quota",
        errno.EACCES: "check the folder's permissions",
        errno.EPERM: "check the folder's permissions",
        errno.EROFS: "write to a folder on a writable file system",
        errno.ENAMETOOLONG: "use a shorter file or folder name",
        errno.ENOTDIR: "a part of the folder path is a file; choose another folder",
        errno.EEXIST: "a part of the folder path is a file; choose another folder",
        errno.EISDIR: "the target is a folder; choose a file name",
    }
    what = hints.get(e.errno or 0, "check the path")
    shown = str(target) if len(str(target)) <= 200 else str(target)[:120] + "..." + str(target)[-60:]
    return OutputError(f"cannot write {shown}: {cause}; a previous file at that path (if any) is intact",
                       f"{what}, or write somewhere else, then rerun")


def remove_stale_temps(folder: str | Path) -> list[Path]:
    """Delete the temporary files ``atomic_path`` leaves behind when a process is killed
    mid-write (``.NAME.<random>.tmp``), anywhere under ``folder``; returns those removed.

    Only call it when no other process is writing into ``folder`` (e.g. when a run resumes).
    """
    removed: list[Path] = []
    for root, _dirs, files in os.walk(folder):  # does not follow symlinked folders
        for name in files:
            path = Path(root, name)
            if _TEMP_NAME.fullmatch(name) and path.is_file() and not path.is_symlink():
                with contextlib.suppress(OSError):
                    path.unlink()
                    removed.append(path)
    return sorted(removed)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text(target: str | Path, text: str) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(target: str | Path, obj: Any) -> None:
    write_text(target, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")
