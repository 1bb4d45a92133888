"""`distill auto`: the cheapest model within an accuracy drop, and the recipe that makes it."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from distillcli.cli.app import app
from distillcli.cli.options import (DataOpt, DataRootOpt, ForceOpt, JsonOpt, QuietOpt, SetOpt, ThreadsOpt,
                                    guarded, progress_for, renamed)
from distillcli.output import Output


@app.command()
@guarded
def auto(source: Path = typer.Argument(..., metavar="SOURCE", help="a model file written by distill (.pt), or an "
                                       "auto recipe (.yaml with an auto: section)"),
         max_drop: Optional[float] = typer.Option(None, "--max-drop", min=0, help="the most top-1 (points, on the "
                                                  "validation split) the chosen model may lose",
                                                  show_default="the recipe's auto.max_drop, else 0.5"),
         objective: Optional[str] = typer.Option(None, "--objective", help="latency | size | macs",
                                                 show_default="the recipe's, else latency"),
         time_budget: Optional[str] = typer.Option(None, "--time-budget", help="wall-clock time of the search, "
                                                   "over every rerun: 90m, 2h, 45s",
                                                   show_default="the recipe's auto.budget, else 60m"),
         trials: Optional[int] = typer.Option(None, "--trials", min=1, help="stop after N trials (over every rerun) "
                                              "instead of after a time"),
         budget: Optional[str] = renamed("--budget", "--time-budget (or --trials N)"),
         batch_size: Optional[int] = typer.Option(None, "--batch-size", min=1, help="latency: the batch size it "
                                                  "is measured at", show_default="the recipe's, else 64"),
         max_epochs: Optional[int] = typer.Option(None, "--max-epochs", min=1, help="the longest KD fine-tune a "
                                                  "candidate gets", show_default="the recipe's, else 9"),
         out: Path = typer.Option(Path("auto"), "--out", help="output folder; rerun with the same one to continue"),
         force: bool = ForceOpt, set_: Optional[list[str]] = SetOpt,
         data: Optional[str] = DataOpt, data_root: Optional[str] = DataRootOpt,
         device: Optional[str] = typer.Option(None, "--device", help="auto | cpu | cuda | cuda:N | mps",
                                              show_default="the recipe's, else auto"),
         seed: Optional[int] = typer.Option(None, "--seed", help="random seed of the search and its trials"),
         threads: Optional[int] = ThreadsOpt, quiet: bool = QuietOpt, as_json: bool = JsonOpt) -> None:
    """Search pruning, KD fine-tune length and precision for the fastest (smallest, cheapest)
    model within --max-drop; writes a table and chart of the candidates, the chosen model and
    best.yaml, a recipe that reproduces it with `distill run`.

    Example: distill auto model.pt --data-root data/ --max-drop 0.5 --objective latency --time-budget 60m
    """
    from distillcli.auto.config import load_auto_recipe, split_auto_recipe
    from distillcli.auto.report import verdict
    from distillcli.auto.run import run_auto
    from distillcli.errors import OptionError

    options = {"max_drop": max_drop, "objective": objective, "budget": _budget(time_budget, trials, budget),
               "batch_size": batch_size, "max_epochs": max_epochs}
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


def _budget(time_budget: str | None, trials: int | None, old: str | None) -> str | None:
    """--time-budget or --trials (or the old --budget, either of them) as the recipe's auto.budget."""
    from distillcli.auto.config import parse_budget
    from distillcli.errors import OptionError

    given = [v for v in (time_budget, trials, old) if v is not None]
    if len(given) > 1:
        raise OptionError("--time-budget and --trials (and the old --budget) set the same limit",
                          "give one of them: a search stops after a time or after a number of trials")
    if time_budget is not None:
        try:
            seconds, _ = parse_budget(time_budget)
        except ValueError:
            seconds = None
        if seconds is None:
            raise OptionError(f"--time-budget {time_budget!r} is not a time", "e.g. --time-budget 90m, 2h or 45s; "
                              "a number of trials is --trials N")
    return f"{trials} trials" if trials is not None else time_budget or old


def _file_recipe(path: Path, data: str | None, data_root: str | None, overrides: list[str]) -> dict:
    """An auto recipe for a model file: its recorded data, the file as the model to start from."""
    from distillcli.errors import ModelFileError
    from distillcli.engine.file_recipe import data_options
    from distillcli.recipe import apply_override

    if path.suffix != ".pt":
        raise ModelFileError(f"{path}: auto starts from a float PyTorch model file (.pt) written by distill",
                             "give the .pt file (not a .pt2 program or ONNX file), or an auto recipe (.yaml)")
    stem = "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in path.stem)[:90]
    raw = {"name": f"auto-{stem}", "data": data_options(path, data, data_root), "teacher": {"checkpoint": str(path)},
           "auto": {}}
    for assignment in overrides:
        apply_override(raw, assignment)
    return raw
