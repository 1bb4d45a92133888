"""`distill cache-teacher RECIPE`: fill the teacher-output store before a run (or a sweep) reads it."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from distillcli.cli import app
from distillcli.cli_options import JsonOpt, QuietOpt, RecipeDeviceOpt, SetOpt, guarded, progress_for
from distillcli.output import Output


@app.command("cache-teacher")
@guarded
def cache_teacher(recipe: Path = typer.Argument(..., help="the recipe YAML file"),
                  set_: Optional[list[str]] = SetOpt, device: Optional[str] = RecipeDeviceOpt,
                  batch_size: int = typer.Option(1024, "--batch-size", min=1, max=65536,
                                                 help="images per teacher forward pass"),
                  quiet: bool = QuietOpt, as_json: bool = JsonOpt) -> None:
    """Compute the teacher outputs the recipe's distill steps will read (epochs x data.augment_replay).

    Only distill steps whose teacher is the recipe's loaded teacher can be filled ahead: a step
    after one that changes the teacher (model: teacher), and the fine-tunes of prune / share /
    QAT (which distil from the model of the run so far), store their outputs as they run.

    Example: distill cache-teacher recipes/resnet56_resnet20_cifar10.yaml --device cuda
    """
    from distillcli.data import load_data
    from distillcli.errors import OptionError
    from distillcli.losses.objectives import uses_teacher_features
    from distillcli.models.build import place
    from distillcli.recipe import load_recipe
    from distillcli.recipe_models import build_from_spec
    from distillcli.report.markdown import human_bytes
    from distillcli.runtime import resolve_device, seed_everything
    from distillcli.steps import STEPS
    from distillcli.teacher_cache.fill import fill
    from distillcli.teacher_cache.key import default_cache_dir
    from distillcli.teacher_cache.logits import open_store

    r = load_recipe(recipe, list(set_ or []) + ([f"device={device}"] if device else []))
    if r.teacher is None:
        raise OptionError(f"{recipe} has no teacher", "add a `teacher:` section; only distill steps read teacher outputs")
    seed_everything(r.seed)  # as a run does: a teacher without a checkpoint starts the same
    dev = resolve_device(r.device)
    out, progress = Output(as_json, quiet), progress_for(quiet, as_json)
    data = load_data(r.data, device=dev, seed=r.seed, channels_last=r.channels_last)
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
    teacher = place(build_from_spec(r.teacher, data).module, dev, channels_last=True)
    loader = data.train
    cache_dir = Path(r.cache_dir).expanduser() if r.cache_dir else default_cache_dir()
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
