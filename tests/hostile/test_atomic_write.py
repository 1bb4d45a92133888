"""Files that cannot be written end in an OutputError naming the path; the previous file is
intact and no temporary file is left behind. Leftovers of a killed process can be removed."""

from __future__ import annotations

import errno
import os
import resource
import signal
from pathlib import Path

import pytest

from distillcli.atomic_write import atomic_path, remove_stale_temps, write_text
from distillcli.errors import DistillError, OutputError


def _leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]


def test_file_too_large_keeps_the_previous_file(tmp_path: Path) -> None:
    """A real write error: the file-size limit makes write() fail with EFBIG."""
    target = tmp_path / "metrics.json"
    target.write_text("previous")
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    limits = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (1000, limits[1]))
    try:
        with pytest.raises(OutputError, match="File too large") as excinfo:
            write_text(target, "x" * 10_000)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, limits)
        signal.signal(signal.SIGXFSZ, handler)
    message = str(excinfo.value)
    assert str(target) in message and "intact" in message and excinfo.value.exit_code == 2
    assert target.read_text() == "previous" and not _leftovers(tmp_path)


@pytest.mark.parametrize("code, hint", [(errno.ENOSPC, "free some disk space"), (errno.EROFS, "writable"),
                                        (errno.EACCES, "permissions")])
def test_errors_when_renaming(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int, hint: str) -> None:
    target = tmp_path / "model.pt"
    target.write_text("previous")

    def fail(*_: object) -> None:
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OutputError, match=hint):
        write_text(target, "new")
    assert target.read_text() == "previous" and not _leftovers(tmp_path)


def test_name_too_long_and_folder_that_is_a_file(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="shorter"):
        write_text(tmp_path / ("x" * 300), "text")
    (tmp_path / "file").write_text("")
    with pytest.raises(OutputError, match="is a file"):
        write_text(tmp_path / "file" / "inside.json", "text")


def test_other_errors_pass_through_and_clean_up(tmp_path: Path) -> None:
    with pytest.raises(DistillError, match="mine"):
        with atomic_path(tmp_path / "a.txt") as tmp:
            tmp.write_text("half")
            raise DistillError("mine")
    assert not list(tmp_path.iterdir())


def test_remove_stale_temps(tmp_path: Path) -> None:
    models = tmp_path / "run" / "models"
    models.mkdir(parents=True)
    stale = [models / ".student.pt.k3j_9xq1.tmp", tmp_path / "run" / ".metrics.json.abcdefgh.tmp"]
    keep = [models / "student.pt", models / "notes.tmp", models / ".hidden", models / ".x.short.tmp"]
    for path in stale + keep:
        path.write_text("x")
    (models / ".dir.abcdefgh.tmp").mkdir()
    assert remove_stale_temps(tmp_path / "run") == sorted(stale)
    assert all(p.exists() for p in keep) and (models / ".dir.abcdefgh.tmp").is_dir()
    assert remove_stale_temps(tmp_path / "missing") == []


def test_remove_stale_temps_matches_what_atomic_path_leaves(tmp_path: Path) -> None:
    """A process killed mid-write leaves exactly such a file: simulate it by leaking one."""
    context = atomic_path(tmp_path / "student.pt")
    tmp = context.__enter__()
    tmp.write_text("half")
    assert remove_stale_temps(tmp_path) == [tmp]
