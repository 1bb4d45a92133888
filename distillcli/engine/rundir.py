"""The run directory: where it goes, whether an existing one may be used, and its layout.

    recipe.yaml      the resolved recipe (every default filled in)
    metrics.json     the run record (record.py), rewritten after every step
    report.md        the table people read
    run.log          one line per epoch and step
    models/          the model after each step; student.pt / teacher.pt are the last ones
    exports/         files written by export steps
    checkpoints/     state.pt and the models it refers to (what `distill resume` reads)

A directory that already holds a run is never reused silently: resuming continues it,
``--force`` replaces it, anything else is refused with what differs.
"""

from __future__ import annotations

import datetime as _dt
import os
import shutil
from pathlib import Path
from typing import Any

import yaml

from distillcli.atomic_write import atomic_path
from distillcli.errors import RunDirError

RUN_FILES = ("recipe.yaml", "metrics.json", "report.md", "run.log")
RUN_FOLDERS = ("models", "exports", "checkpoints", "sensitivity")


def default_run_dir(name: str) -> Path:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = Path("runs") / f"{name}-{stamp}"
    n = 1
    while path.exists():
        n += 1
        path = Path("runs") / f"{name}-{stamp}-{n}"
    return path


def holds_run(path: Path) -> bool:
    return (path / "recipe.yaml").is_file() or (path / "checkpoints").is_dir()


def differences(old: Any, new: Any, where: str = "") -> list[str]:
    """What differs from the saved resolved recipe ``old``. Every option the saving distillcli had
    is in it, so a key only ``new`` has is an option added since, at its default (which keeps the
    old behaviour): a run started before an upgrade resumes after it."""
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[str] = []
        for key in old:
            out += differences(old[key], new.get(key), f"{where}.{key}" if where else str(key))
        return out
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return [d for i, (a, b) in enumerate(zip(old, new)) for d in differences(a, b, f"{where}[{i}]")]
    return [] if old == new else [f"{where}: {old!r} -> {new!r}"]


def recipe_differences(path: Path, recipe: dict[str, Any], name: str = "recipe.yaml") -> list[str]:
    """What differs between the recipe saved in ``path / name`` and ``recipe`` (empty: the same)."""
    try:
        saved = yaml.safe_load((path / name).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        return [f"{name}: missing or unreadable"]
    return differences(saved, recipe)


def check_out_dir(path: Path, recipe: dict[str, Any], force: bool, resume: bool) -> None:
    """Refuse a directory that cannot take this run (see the module docstring)."""
    if path.exists() and not path.is_dir():
        raise RunDirError(f"--out {path} is a file, not a directory", "choose another --out")
    if resume:
        if not holds_run(path):
            raise RunDirError(f"{path} holds no run to resume", "check the path, or start the run without --resume")
        diff = recipe_differences(path, recipe)
        if diff:
            raise RunDirError(f"cannot resume {path} with a different recipe: " + "; ".join(diff[:5])
                              + (f" (+{len(diff) - 5} more)" if len(diff) > 5 else ""),
                              f"resume with the run's own recipe (distill resume {path}), or start anew with --force")
        return
    if not path.exists() or force or not any(path.iterdir()):
        return
    if holds_run(path):
        diff = recipe_differences(path, recipe)
        same = "the same recipe" if not diff else "another recipe (" + "; ".join(diff[:3]) + \
            (f"; +{len(diff) - 3} more" if len(diff) > 3 else "") + ")"
        raise RunDirError(f"{path} already holds a run of {same}",
                          f"continue it with `distill resume {path}`, replace it with --force, or choose another --out")
    raise RunDirError(f"{path} is not empty and holds no run", "choose an empty or new --out, or add --force")


def clear_run(path: Path) -> None:
    """--force: remove what an earlier run left in ``path`` (only the run's own files)."""
    for name in RUN_FILES:
        (path / name).unlink(missing_ok=True)
    for name in RUN_FOLDERS:
        if (path / name).is_dir():
            shutil.rmtree(path / name)


def publish_final_models(run_dir: Path, files: dict[str, Path | None]) -> None:
    """models/student.pt and teacher.pt: the last file of each (ONNX weights beside them too),
    as hard links where the file system has them, so they take no extra disk space."""
    for target, src in files.items():
        if src is None or not src.is_relative_to(run_dir / "models"):
            continue
        link_model(src, run_dir / "models" / f"{target}{src.suffix}")


def link_model(src: Path, dest: Path) -> None:
    """``dest`` becomes the model file ``src`` (and its ONNX weights beside it): a hard link where
    the file system has them, else a copy; atomically either way."""
    for a, b in ((src, dest), (src.with_name(src.name + ".data"), dest.with_name(dest.name + ".data"))):
        if a.exists():
            with atomic_path(b) as tmp:
                tmp.unlink()
                try:
                    os.link(a, tmp)
                except OSError:
                    shutil.copyfile(a, tmp)
