"""`distill auto`: the cheapest model within an accuracy drop, and the recipe that makes it."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from distillcli.cli import app
from distillcli.cli_options import (DataOpt, DataRootOpt, ForceOpt, JsonOpt, QuietOpt, SetOpt, ThreadsOpt, guarded,
                                    progress_for)
from distillcli.output import Output


@app.command()
@guarded
def auto(source: Path = typer.Argument(..., help="a model file written by distill (.pt), or an auto recipe "
                                       "(.yaml with an auto: section)"),
         max_drop: Optional[float] = typer.Option(None, "--max-drop", min=0, help="the most top-1 (points, on the "
                                                  "validation split) the chosen model may lose (default 0.5)"),
         objective: Optional[str] = typer.Option(None, "--objective", help="latency | size | macs (default latency)"),
         budget: Optional[str] = typer.Option(None, "--budget", help="90m, 2h, 45s or '30 trials', over every "
                                              "rerun (default 60m)"),
         batch_size: Optional[int] = typer.Option(None, "--batch-size", min=1, help="latency: the batch size it "
                                                  "is measured at (default 64)"),
         max_epochs: Optional[int] = typer.Option(None, "--max-epochs", min=1, help="the longest KD fine-tune a "
                                                  "candidate gets (default 9)"),
         out: Path = typer.Option(Path("auto"), "--out", help="output folder; rerun with the same one to continue"),
         force: bool = ForceOpt, set_: Optional[list[str]] = SetOpt,
         data: Optional[str] = DataOpt, data_root: Optional[str] = DataRootOpt,
         device: Optional[str] = typer.Option(None, "--device", help="auto | cpu | cuda | cuda:N | mps"),
         seed: Optional[int] = typer.Option(None, "--seed", help="random seed of the search and its trials"),
         threads: Optional[int] = ThreadsOpt, quiet: bool = QuietOpt, as_json: bool = JsonOpt) -> None:
    """Search pruning, KD fine-tune length and precision for the fastest (smallest, cheapest)
    model within --max-drop; writes a table and chart of the candidates, the chosen model and
    best.yaml, a recipe that reproduces it with `distill run`.

    Example: distill auto model.pt --data-root data/ --max-drop 0.5 --objective latency --budget 60m
    """
    from distillcli.auto.config import load_auto_recipe, split_auto_recipe
    from distillcli.auto.report import verdict
    from distillcli.auto.run import run_auto
    from distillcli.errors import OptionError

    options = {"max_drop": max_drop, "objective": objective, "budget": budget, "batch_size": batch_size,
               "max_epochs": max_epochs}
    overrides = list(set_ or []) + [f"auto.{k}={v}" for k, v in options.items() if v is not None]
    overrides += [f"{k}={v}" for k, v in (("device", device), ("seed", seed), ("threads", threads)) if v is not None]
    if source.suffix in (".yaml", ".yml"):
        if data is not None or data_root is not None:
            raise OptionError("--data and --data-root are for a model file; a recipe names its data",
                              "set them in the recipe, or with --set data.root=DIR")
        base, cfg = load_auto_recipe(source, overrides)
    else:
        base, cfg = split_auto_recipe(_file_recipe(source, data, data_root, overrides), str(source))
    result, test, summary = run_auto(base, cfg, out, progress_for(quiet, as_json), force)
    o = Output(as_json, quiet)
    o.result({"status": "ok", **summary}, verdict(result, test))
    o.info(f"wrote {out / 'candidates.md'}, candidates.png, auto.json" +
           (f", best.yaml and {summary['files']['best_model']}\nnext: distill run {out / 'best.yaml'}"
            if result.chosen else ""))


def _file_recipe(path: Path, data: str | None, data_root: str | None, overrides: list[str]) -> dict:
    """An auto recipe for a model file: its recorded data, the file as the model to start from."""
    from distillcli.errors import ModelFileError
    from distillcli.file_recipe import data_options
    from distillcli.recipe_yaml import apply_override

    if path.suffix != ".pt":
        raise ModelFileError(f"{path}: auto starts from a float PyTorch model file (.pt) written by distill",
                             "give the .pt file (not a .pt2 program or ONNX file), or an auto recipe (.yaml)")
    stem = "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in path.stem)[:90]
    raw = {"name": f"auto-{stem}", "data": data_options(path, data, data_root), "teacher": {"checkpoint": str(path)},
           "auto": {}}
    for assignment in overrides:
        apply_override(raw, assignment)
    return raw
