"""`distill cache list|clear|prune|fill`: the teacher-output store (stored teacher logits, one folder
per teacher key): what it holds, removing it, keeping it small, filling it before a run reads it."""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path
from typing import Any, Optional

import typer

from distillcli.cli.app import app
from distillcli.cli.options import JsonOpt, QuietOpt, RecipeDeviceOpt, SetOpt, guarded, progress_for
from distillcli.output import Output
from distillcli.report.markdown import human_bytes
from distillcli.teacher_cache.folders import (DEFAULT_MAX_BYTES, MAX_BYTES_ENV, SUBDIR, Folder, default_cache_dir,
                                              folders, least_recently_used, max_bytes, parse_size, remove)

cache_app = typer.Typer(help="The teacher-output store: stored teacher logits that distill steps reuse, one folder "
                             "per teacher key, kept under a size cap "
                             f"({human_bytes(DEFAULT_MAX_BYTES)}; {MAX_BYTES_ENV} sets it) by removing the least "
                             "recently used keys.", no_args_is_help=True)
app.add_typer(cache_app, name="cache")

CacheDirOpt = typer.Option(None, "--cache-dir", help="the store's folder (a recipe's cache_dir)",
                           show_default="$XDG_CACHE_HOME/distill, else ~/.cache/distill")
DryRunOpt = typer.Option(False, "--dry-run", metavar="", help="say what would be removed; remove nothing")


def _root(cache_dir: Path | None) -> Path:
    return cache_dir.expanduser() if cache_dir is not None else default_cache_dir()


def _when(seconds: float) -> str:
    return datetime.fromtimestamp(seconds).isoformat(sep=" ", timespec="seconds")


def _rows(found: list[Folder]) -> list[dict[str, Any]]:
    return [{"key": f.key, "entries": f.entries, "bytes": f.bytes, "last_used": _when(f.last_used)} for f in found]


@cache_app.command("list")
@guarded
def cache_list(cache_dir: Optional[Path] = CacheDirOpt, as_json: bool = JsonOpt) -> None:
    """Show each teacher key's stored outputs: entries (augmentation epochs), size and last use, least
    recently used first.

    Example: distill cache list
    """
    from rich.table import Table

    root = _root(cache_dir)
    found, cap = folders(root), max_bytes()
    total = sum(f.bytes for f in found)
    table = Table(title=f"teacher outputs in {root / SUBDIR}: {human_bytes(total)} (cap {human_bytes(cap)})")
    for col in ("key", "entries", "size", "last used"):
        table.add_column(col, justify="right" if col in ("entries", "size") else "left")
    for f in found:
        table.add_row(f.key, str(f.entries), human_bytes(f.bytes), _when(f.last_used))
    Output(as_json).result({"cache_dir": str(root), "stores": _rows(found), "total_bytes": total, "max_bytes": cap},
                           table if found else f"no stored teacher outputs in {root / SUBDIR}")


def _remove(root: Path, chosen: list[Folder], dry_run: bool, as_json: bool) -> None:
    """Remove (or with --dry-run, name) the chosen keys' folders, and say what went and what is left."""
    freed = sum(f.bytes for f in chosen) if dry_run else sum(remove(f) for f in chosen)
    left = sum(f.bytes for f in folders(root)) - (freed if dry_run else 0)
    verb = "would remove" if dry_run else "removed"
    lines = [f"{verb} {f.key}: {f.entries} entries, {human_bytes(f.bytes)}, last used {_when(f.last_used)}"
             for f in chosen]
    lines.append(f"{verb} {len(chosen)} key(s), {human_bytes(freed)}; {human_bytes(left)} left in {root / SUBDIR}")
    Output(as_json).result({"dry_run": dry_run, "removed": _rows(chosen), "freed_bytes": freed, "left_bytes": left},
                           "\n".join(lines))


@cache_app.command("clear")
@guarded
def cache_clear(key: Optional[str] = typer.Option(None, "--key", help="only this teacher key, or the start of one "
                                                  "(`distill cache list` shows them)", show_default="every key"),
                dry_run: bool = DryRunOpt, cache_dir: Optional[Path] = CacheDirOpt, as_json: bool = JsonOpt) -> None:
    """Remove stored teacher outputs, of every key or of one; a run that needs them computes them again.

    Example: distill cache clear --key 3f2a9c --dry-run
    """
    from distillcli.errors import OptionError

    root = _root(cache_dir)
    chosen = folders(root)
    if key is not None:
        chosen = [f for f in chosen if f.key.startswith(key)]
        if len(chosen) != 1:
            raise OptionError(f"--key {key!r} names {len(chosen) or 'no'} stored key(s) in {root / SUBDIR}",
                              "`distill cache list` shows the keys; give one, or enough of its start to be unique")
    _remove(root, chosen, dry_run, as_json)


@cache_app.command("prune")
@guarded
def cache_prune(max_size: str = typer.Option(..., "--max-size", help="the most all keys' outputs may take together, "
                                             "e.g. 500M or 2G (powers of 1024)"),
                dry_run: bool = DryRunOpt, cache_dir: Optional[Path] = CacheDirOpt, as_json: bool = JsonOpt) -> None:
    """Remove the least recently used keys' outputs until the store takes at most --max-size.

    Example: distill cache prune --max-size 2G
    """
    from distillcli.errors import OptionError

    try:
        limit = parse_size(max_size)
    except ValueError:
        raise OptionError(f"--max-size {max_size!r} is not a size", "e.g. --max-size 500M, 2G or 1T") from None
    root = _root(cache_dir)
    _remove(root, least_recently_used(root, limit), dry_run, as_json)


@cache_app.command("fill")
@app.command("cache-teacher", hidden=True)
@guarded
def cache_fill(ctx: typer.Context, recipe: Path = typer.Argument(..., metavar="RECIPE", help="the recipe YAML file"),
               set_: Optional[list[str]] = SetOpt, device: Optional[str] = RecipeDeviceOpt,
               batch_size: int = typer.Option(1024, "--batch-size", min=1, max=65536,
                                              help="images per teacher forward pass"),
               quiet: bool = QuietOpt, as_json: bool = JsonOpt) -> None:
    """Compute the teacher outputs the recipe's distill steps will read (epochs x data.augment_replay).

    Only distill steps whose teacher is the recipe's loaded teacher can be filled ahead: a step
    after one that changes the teacher (model: teacher), and the fine-tunes of prune / share /
    QAT (which distil from the model of the run so far), store their outputs as they run.

    Example: distill cache fill recipes/resnet56_resnet20_cifar10.yaml --device cuda
    """
    from distillcli.errors import OptionError
    from distillcli.losses.objectives import uses_teacher_features
    from distillcli.models.build import place
    from distillcli.recipe import load_recipe
    from distillcli.engine.models import build_teacher, recipe_data
    from distillcli.runtime import resolve_device, seed_everything
    from distillcli.steps import STEPS
    from distillcli.teacher_cache.fill import fill
    from distillcli.teacher_cache.logits import open_store

    if ctx.info_name == "cache-teacher":
        sys.stderr.write("warning: distill cache-teacher is now distill cache fill\n")
    r = load_recipe(recipe, list(set_ or []) + ([f"device={device}"] if device else []))
    if r.teacher is None:
        raise OptionError(f"{recipe} has no teacher", "add a `teacher:` section; only distill steps read teacher outputs")
    seed_everything(r.seed)  # as a run does: a teacher without a checkpoint starts the same
    dev = resolve_device(r.device)
    out, progress = Output(as_json, quiet), progress_for(quiet, as_json)
    data = recipe_data(r, dev)
    steps, notes = [], []
    for index, (kind, cfg) in enumerate(r.step_list()):
        if not STEPS.get(kind).keeps_teacher and cfg.model == "teacher":
            notes.append(f"steps from {index} on are skipped: step {index} ({kind}) changes the teacher first")
            break
        if kind == "distill" and cfg.teacher_cache != "off" and not uses_teacher_features(cfg.loss):
            steps.append((index, cfg))
    if not steps:
        raise OptionError("no distill step of this recipe reads stored teacher outputs that can be computed ahead"
                          + (f" ({notes[0]})" if notes else ""),
                          "give the recipe a loaded teacher (teacher.checkpoint) and a distill step without "
                          "teacher_cache: off or feature terms")
    teacher = place(build_teacher(r, data).module, dev, channels_last=True)  # type: ignore[union-attr]
    loader = data.train
    cache_dir = _root(Path(r.cache_dir) if r.cache_dir else None)
    store = open_store(teacher, "required", loader, data.num_classes, cache_dir, 1, progress.message)
    assert store is not None  # "required" raises instead
    epochs = {loader.augment_epoch(e) for _, cfg in steps for e in range(cfg.epochs)}
    loader.batch_size = batch_size  # type: ignore[attr-defined]  (the samples' augmentation does not depend on it)
    stats = fill(teacher, loader, store, epochs, data.num_classes, progress)
    result: dict[str, Any] = {"store": str(store.folder), "key": stats.key, "steps": [i for i, _ in steps],
                              "augmentation_epochs": len(epochs), "hits": stats.hits, "misses": stats.misses,
                              "disk_bytes": stats.disk_bytes, "notes": notes}
    out.result(result, "\n".join(notes + [
        f"teacher outputs for steps {', '.join(str(i) for i, _ in steps)}: {len(epochs)} augmentation epoch(s), "
        f"{stats.hits} already stored, {stats.misses} computed; {human_bytes(stats.disk_bytes)} in {store.folder}"]))
