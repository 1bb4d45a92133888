"""`distill cache list|clear|prune|fill` on the teacher-output store, and its size cap: writing an
entry removes the least recently used other keys' folders, never the one in use."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import typer.main
from typer.testing import CliRunner

from distillcli.cli import app
from distillcli.teacher_cache.folders import SUBDIR, parse_size
from distillcli.teacher_cache.store import Store

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()
DAY = 86400


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def _key_folder(cache: Path, key: str, sizes: list[int], days_ago: float) -> Path:
    """A key's folder of entries of these sizes, last used ``days_ago``."""
    folder = cache / SUBDIR / key
    folder.mkdir(parents=True)
    for epoch, size in enumerate(sizes):
        (folder / f"aug-{epoch}.bin").write_bytes(b"x" * size)
    when = time.time() - days_ago * DAY
    os.utime(folder, (when, when))
    return folder


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    """Three keys: aaaa (used 3 days ago, 300 B), bbbb (2 days, 200 B), cccc (1 day, 100 B)."""
    root = tmp_path / "cache"
    for key, sizes, days in (("aaaa", [100, 200], 3), ("bbbb", [200], 2), ("cccc", [50, 50], 1)):
        _key_folder(root, key, sizes, days)
    return root


def cli_json(*args: object) -> dict:
    result = invoke(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_list_shows_each_key_least_recently_used_first(cache: Path) -> None:
    listed = cli_json("cache", "list", "--cache-dir", cache)
    assert [(s["key"], s["entries"], s["bytes"]) for s in listed["stores"]] == \
        [("aaaa", 2, 300), ("bbbb", 1, 200), ("cccc", 2, 100)]
    assert listed["total_bytes"] == 600 and listed["max_bytes"] == 20 * 2**30
    assert all(s["last_used"] for s in listed["stores"])
    empty = invoke("cache", "list", "--cache-dir", cache / "none")
    assert empty.exit_code == 0 and "no stored teacher outputs" in empty.stdout


def test_prune_removes_least_recently_used_keys_until_under_the_size(cache: Path) -> None:
    dry = cli_json("cache", "prune", "--max-size", "350", "--cache-dir", cache, "--dry-run")
    assert [r["key"] for r in dry["removed"]] == ["aaaa"] and dry["left_bytes"] == 300 and dry["dry_run"]
    assert (cache / SUBDIR / "aaaa").is_dir()  # a dry run removes nothing
    done = cli_json("cache", "prune", "--max-size", "350", "--cache-dir", cache)
    assert (done["freed_bytes"], done["left_bytes"]) == (300, 300) and not (cache / SUBDIR / "aaaa").exists()
    assert cli_json("cache", "prune", "--max-size", "1K", "--cache-dir", cache)["removed"] == []
    bad = invoke("cache", "prune", "--max-size", "lots", "--cache-dir", cache)
    assert bad.exit_code == 2 and "--max-size 'lots' is not a size" in bad.stderr


def test_clear_removes_one_key_or_all_and_says_what(cache: Path) -> None:
    one = invoke("cache", "clear", "--key", "bb", "--cache-dir", cache)
    assert one.exit_code == 0 and "removed bbbb: 1 entries, 200 B" in one.stdout
    assert sorted(p.name for p in (cache / SUBDIR).iterdir()) == ["aaaa", "cccc"]
    unknown = invoke("cache", "clear", "--key", "zz", "--cache-dir", cache)
    assert unknown.exit_code == 2 and "distill cache list" in unknown.stderr
    dry = cli_json("cache", "clear", "--cache-dir", cache, "--dry-run")
    assert [r["key"] for r in dry["removed"]] == ["aaaa", "cccc"] and len(list((cache / SUBDIR).iterdir())) == 2
    assert cli_json("cache", "clear", "--cache-dir", cache)["freed_bytes"] == 400
    assert list((cache / SUBDIR).iterdir()) == []


def test_sizes_are_read_in_powers_of_1024() -> None:
    assert [parse_size(s) for s in ("4096", "2G", "500M", "1.5GiB", "3kb")] == [4096, 2 * 2**30, 500 * 2**20,
                                                                              3 * 2**29, 3072]
    with pytest.raises(ValueError):
        parse_size("-1G")


def _store(cache: Path, key: str, notes: list[str]) -> Store:
    return Store(cache, key, {"samples": 4}, notes.append)


def test_writing_an_entry_keeps_the_stores_under_the_cap(cache: Path, tmp_path: Path, monkeypatch) -> None:
    ids, arrays = torch.arange(4), {"values": torch.zeros(4, 10, dtype=torch.float16)}
    size = _store(tmp_path / "elsewhere", "dddd", []).save(0, ids, arrays)  # the size the entry will have
    busy = cache / SUBDIR / "bbbb" / ".aug-1.bin.abcdefgh.tmp"  # another run writing into bbbb right now
    busy.write_bytes(b"x" * 10)
    monkeypatch.setenv("DISTILL_CACHE_MAX_BYTES", str(610 + size - 1))  # 1 B short of room for the new entry
    notes: list[str] = []
    _store(cache, "dddd", notes).save(0, ids, arrays)
    assert sorted(p.name for p in (cache / SUBDIR).iterdir()) == ["bbbb", "cccc", "dddd"]  # aaaa: least recent
    assert len(notes) == 1 and "removed the 1 least recently used" in notes[0] and "DISTILL_CACHE_MAX_BYTES" in notes[0]
    monkeypatch.setenv("DISTILL_CACHE_MAX_BYTES", "1")  # the folder in use is never removed, however full
    store = _store(cache, "dddd", notes)
    store.save(1, ids, arrays)
    assert sorted(p.name for p in (cache / SUBDIR).iterdir()) == ["bbbb", "dddd"]
    assert [p.name for p in (cache / SUBDIR / "bbbb").iterdir()] == [busy.name]  # a write in progress is left
    assert store.load(1) is not None


def test_reading_a_store_marks_it_used_and_a_bad_cap_is_an_option_error(cache: Path, monkeypatch) -> None:
    from distillcli.errors import OptionError

    folder = cache / SUBDIR / "aaaa"
    before = folder.stat().st_mtime
    assert _store(cache, "aaaa", []).load(0) is None  # not an entry of this format: recomputed, but used
    assert folder.stat().st_mtime > before + DAY
    monkeypatch.setenv("DISTILL_CACHE_MAX_BYTES", "twenty gigs")
    with pytest.raises(OptionError, match="DISTILL_CACHE_MAX_BYTES"):
        _store(cache, "aaaa", [])


def test_fill_is_cache_fill_and_cache_teacher_its_hidden_old_name(tmp_path: Path) -> None:
    assert "cache-teacher" not in invoke("--help").stdout
    assert "fill" in typer.main.get_command(app).commands["cache"].commands
    recipe = tmp_path / "r.yaml"
    recipe.write_text("name: r\ndata: {name: synthetic}\nsteps: [{evaluate: {}}]\n")  # no teacher: refused
    new, old = invoke("cache", "fill", recipe), invoke("cache-teacher", recipe)
    assert new.exit_code == old.exit_code == 2 and "has no teacher" in new.stderr and "has no teacher" in old.stderr
    assert "is now" not in new.stderr
    assert "warning: distill cache-teacher is now distill cache fill" in old.stderr


def test_cache_list_clear_prune_do_not_import_torch(cache: Path) -> None:
    code = ("import sys\nfrom distillcli.cli import app\n"
            f"for args in (['list'], ['prune', '--max-size', '2G'], ['clear', '--dry-run']):\n"
            f"    try:\n        app(['cache', *args, '--cache-dir', {str(cache)!r}])\n"
            "    except SystemExit as e:\n        assert not e.code, e.code\n"
            "    assert 'torch' not in sys.modules, args\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
