"""The command tree. Every command is a thin call into the library; this is the only place
that turns a DistillError into a message on stderr and an exit code (2: bad input, 1: a
failure while running). DISTILL_DEBUG=1 shows tracebacks."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, Callable, Optional

import typer

from distillcli.errors import DistillError
from distillcli.output import Output, measures_table

app = typer.Typer(
    help="Make PyTorch image models smaller and faster: distillation, pruning, quantization, export.\n\n"
         "Start with:  distill run recipes/quickstart.yaml",
    no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
)

DeviceOpt = typer.Option(None, "--device", help="auto | cpu | cuda | cuda:N | mps (overrides the recipe)")
JsonOpt = typer.Option(False, "--json", help="print one JSON object on stdout (for scripts)")
QuietOpt = typer.Option(False, "--quiet", "-q", help="no progress output")
SetOpt = typer.Option(None, "--set", help="override a recipe key: --set steps.0.epochs=1 (repeatable)")


def _fail(message: str, code: int) -> None:
    sys.stderr.write(f"error: {message}\n")
    raise typer.Exit(code)


def guarded(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Run a command, mapping errors to one message and an exit code, never a traceback."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if os.environ.get("DISTILL_DEBUG") == "1":
            return fn(*args, **kwargs)
        try:
            return fn(*args, **kwargs)
        except DistillError as e:
            _fail(str(e), e.exit_code)
        except KeyboardInterrupt:
            _fail("interrupted", 130)
        except typer.Exit:
            raise
        except Exception as e:  # a bug: say so briefly; the traceback is one variable away
            _fail(f"{type(e).__name__}: {e}\n  -> this is a bug in distillcli; rerun with DISTILL_DEBUG=1 "
                  "for the traceback and report it", 1)

    return wrapper


def _overrides(sets: list[str] | None, device: str | None, seed: int | None) -> list[str]:
    out = list(sets or [])
    if device is not None:
        out.append(f"device={device}")
    if seed is not None:
        out.append(f"seed={seed}")
    return out


@app.command()
@guarded
def run(recipe: Path = typer.Argument(..., help="the recipe YAML file"),
        set_: Optional[list[str]] = SetOpt, device: Optional[str] = DeviceOpt,
        seed: Optional[int] = typer.Option(None, "--seed", help="random seed (overrides the recipe)"),
        out: Optional[Path] = typer.Option(None, "--out", help="run directory (default runs/<name>-<time>)"),
        quiet: bool = QuietOpt, as_json: bool = JsonOpt) -> None:
    """Run a recipe: train / distill / compress, evaluate after every step, write the report.

    Example: distill run recipes/vgg16_cifar10.yaml --set steps.0.epochs=1 --device cpu
    """
    from distillcli.pipeline import Pipeline
    from distillcli.progress import make_progress
    from distillcli.recipe import load_recipe

    r = load_recipe(recipe, _overrides(set_, device, seed))
    result = Pipeline(r, make_progress(quiet or as_json), out=out, recipe_file=str(recipe)).run()
    steps = [{"index": s["index"], "kind": s["kind"], "target": s["target"], "model_file": s["model_file"],
              **{k: v for k, v in s["measures"].items() if k != "per_class_top1"}} for s in result.metrics["steps"]]
    summary = {"status": result.metrics["run"]["status"], "run_dir": str(result.run_dir),
               "metrics": str(result.run_dir / "metrics.json"), "report": str(result.run_dir / "report.md"),
               "steps": steps}
    rows = [(f"{s['index']} {s['kind']} [{s['target']}]", s["measures"]) for s in result.metrics["steps"]]
    o = Output(as_json, quiet)
    o.result(summary, measures_table(f"run {r.name}", rows))
    o.info(f"report: {result.run_dir / 'report.md'}\nnext: distill eval {result.run_dir / 'models' / 'student.pt'}")


@app.command("eval")
@guarded
def eval_(model: Path = typer.Argument(..., help="a model file written by distill (.pt, .pt2, .onnx)"),
          data: Optional[str] = typer.Option(None, "--data", help="dataset name (default: the one recorded in the file)"),
          data_root: Optional[str] = typer.Option(None, "--data-root", help="dataset folder"),
          device: str = typer.Option("auto", "--device", help="auto | cpu | cuda | cuda:N | mps"),
          batch_size: Optional[int] = typer.Option(None, "--batch-size", min=1),
          subset: Optional[int] = typer.Option(None, "--subset", min=1, help="evaluate only the first N samples"),
          no_latency: bool = typer.Option(False, "--no-latency", help="skip the latency measurement"),
          as_json: bool = JsonOpt) -> None:
    """Evaluate a saved model: accuracy, size, MACs and latency, in a fresh process.

    Example: distill eval runs/quickstart-*/models/student.pt --data-root data/
    """
    from distillcli.file_ops import evaluate_file

    result = evaluate_file(model, data, data_root, device, batch_size, subset, latency=not no_latency)
    Output(as_json).result(result, measures_table(f"{model} on {result['data']}", [(model.name, result["measures"])]))


@app.command()
@guarded
def validate(recipe: Path = typer.Argument(..., help="the recipe YAML file"),
             set_: Optional[list[str]] = SetOpt, as_json: bool = JsonOpt) -> None:
    """Check a recipe without running it; reports every problem at once.

    Example: distill validate recipes/resnet56_resnet20_cifar10.yaml
    """
    from distillcli.recipe import load_recipe

    r = load_recipe(recipe, list(set_ or []))
    steps = [kind for kind, _ in r.step_list()]
    Output(as_json).result({"valid": True, "name": r.name, "steps": steps},
                           f"{recipe}: valid ({len(steps)} steps: {' -> '.join(steps) or 'none'})")


@app.command()
@guarded
def schema(out: Optional[Path] = typer.Option(None, "--out", help="write to this file instead of stdout")) -> None:
    """Print the recipe's JSON Schema (for editor completion and validation).

    Example: distill schema --out recipe.schema.json
    """
    from distillcli.fileio import write_text
    from distillcli.recipe import recipe_schema

    text = json.dumps(recipe_schema(), indent=2)
    if out:
        write_text(out, text + "\n")
    else:
        sys.stdout.write(text + "\n")


@app.command("list")
@guarded
def list_(what: str = typer.Argument(..., help="models | datasets | steps | losses"),
          pattern: str = typer.Argument("*", help="wildcard filter, e.g. 'resnet*'"),
          as_json: bool = JsonOpt) -> None:
    """List the registered models, datasets, steps or losses.

    Example: distill list models 'resnet*'
    """
    from distillcli.data import DATASETS
    from distillcli.errors import OptionError
    from distillcli.losses import LOSSES
    from distillcli.models.zoo import list_models
    from distillcli.registry import closest
    from distillcli.steps import STEPS

    sources = {"models": list_models, "datasets": DATASETS.names, "steps": STEPS.names, "losses": LOSSES.names}
    if what not in sources:
        guess = closest(what, list(sources))
        raise OptionError(f"cannot list {what!r}", f"did you mean {guess!r}?" if guess else f"choose one of {', '.join(sources)}")
    names = sources[what](pattern)
    Output(as_json).result({what: names}, "\n".join(names))


def main() -> None:
    app()
