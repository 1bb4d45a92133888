"""The command tree. Every command is a thin call into the library; errors become one message
on stderr and an exit code (cli_options.guarded): 0 ok, 1 a failure while running, 2 bad
input, 130 interrupted. Commands on a model file live in cli_files.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Optional

import typer

from distillcli.cli_options import JsonOpt, QuietOpt, RecipeDeviceOpt, SetOpt, guarded
from distillcli.output import Output, measures_table

app = typer.Typer(
    help="Make PyTorch image models smaller and faster: distillation, pruning, quantization, export.\n\n"
         "Start with:  distill run recipes/quickstart.yaml",
    no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
)


def _overrides(sets: list[str] | None, device: str | None, seed: int | None) -> list[str]:
    out = list(sets or [])
    if device is not None:
        out.append(f"device={device}")
    if seed is not None:
        out.append(f"seed={seed}")
    return out


def _launch_torchrun(nproc: int, out: Path) -> None:
    """`distill run --nproc N`: the same command under torchrun (its own launcher and rendezvous)."""
    args, skip = [], False
    for arg in sys.argv[1:]:
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            args.append(arg)
    if "--out" not in args and not any(a.startswith("--out=") for a in args):
        args += ["--out", str(out)]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           "-m", "distillcli", *args]
    raise typer.Exit(subprocess.call(cmd, env={**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}))


def _print_run(result: Any, quiet: bool, as_json: bool) -> None:
    record, run_dir = result.record, result.run_dir
    steps = [{"index": s.index, "kind": s.kind, "target": s.target, "model_file": s.model_file,
              **s.measures.summary()} for s in record.steps]
    summary = {"status": record.run.status, "run_dir": str(run_dir), "metrics": str(run_dir / "metrics.json"),
               "report": str(run_dir / "report.md"), "steps": steps}
    rows = [(f"{s.index} {s.kind} [{s.target}]", s.measures.model_dump()) for s in record.steps]
    o = Output(as_json, quiet)
    o.result(summary, measures_table(f"run {record.run.name}", rows))
    final = record.final_step()
    o.info(f"report: {run_dir / 'report.md'}" + (f"\nnext: distill eval {run_dir / final.model_file}"
                                                 if final is not None and final.model_file else ""))


@app.command()
@guarded
def run(recipe: Path = typer.Argument(..., help="the recipe YAML file"),
        set_: Optional[list[str]] = SetOpt, device: Optional[str] = RecipeDeviceOpt,
        seed: Optional[int] = typer.Option(None, "--seed", help="random seed (overrides the recipe)"),
        out: Optional[Path] = typer.Option(None, "--out", help="run directory (default runs/<name>-<time>)"),
        resume: Optional[Path] = typer.Option(None, "--resume", help="continue the run in this directory from its "
                                              "last checkpoint"),
        force: bool = typer.Option(False, "--force", help="replace the run already in --out"),
        nproc: Optional[int] = typer.Option(None, "--nproc", min=1, max=1024, help="launch N processes with torchrun "
                                            "(distributed data parallel on this machine)"),
        quiet: bool = QuietOpt, as_json: bool = JsonOpt) -> None:
    """Run a recipe: train / distill / compress, evaluate after every step, write the report.

    Example: distill run recipes/vgg16_cifar10.yaml --set steps.0.epochs=1 --device cpu
    """
    from distillcli.errors import OptionError
    from distillcli.pipeline import Pipeline
    from distillcli.progress import make_progress
    from distillcli.recipe import load_recipe
    from distillcli.rundir import default_run_dir

    r = load_recipe(recipe, _overrides(set_, device, seed))
    if resume is not None and out is not None and resume.resolve() != out.resolve():
        raise OptionError("--resume and --out name different directories", "give only --resume RUN_DIR")
    if resume is not None and force:
        raise OptionError("--resume continues a run and --force replaces it", "give one of them")
    if nproc is not None and nproc > 1 and "RANK" not in os.environ:
        _launch_torchrun(nproc, out or resume or default_run_dir(r.name))
    pipeline = Pipeline(r, make_progress(quiet), out=resume or out, recipe_file=str(recipe),
                        resume=resume is not None, force=force)
    result = pipeline.run()
    if pipeline.dist.is_main:
        _print_run(result, quiet, as_json)


@app.command()
@guarded
def resume(run_dir: Path = typer.Argument(..., help="a run directory written by `distill run`"),
           quiet: bool = QuietOpt, as_json: bool = JsonOpt) -> None:
    """Continue an interrupted or killed run from its last checkpoint (mid-epoch included).

    Example: distill resume runs/quickstart-20261201-120000
    """
    from distillcli.errors import RunDirError
    from distillcli.pipeline import Pipeline
    from distillcli.progress import make_progress
    from distillcli.recipe import load_recipe

    if not (run_dir / "recipe.yaml").is_file():
        raise RunDirError(f"{run_dir} holds no run (no recipe.yaml)", "give the directory `distill run` wrote")
    r = load_recipe(run_dir / "recipe.yaml")
    pipeline = Pipeline(r, make_progress(quiet), out=run_dir, recipe_file=str(run_dir / "recipe.yaml"), resume=True)
    result = pipeline.run()
    if pipeline.dist.is_main:
        _print_run(result, quiet, as_json)


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
def schema(out: Optional[Path] = typer.Option(None, "--out", help="write to this file instead of stdout"),
           metrics: bool = typer.Option(False, "--metrics", help="the schema of metrics.json instead of the recipe's")) -> None:
    """Print the recipe's JSON Schema (for editor completion and validation), or metrics.json's.

    Example: distill schema --out recipe.schema.json
    """
    from distillcli.atomic_write import write_text
    from distillcli.recipe import recipe_schema
    from distillcli.record import metrics_schema

    text = json.dumps(metrics_schema() if metrics else recipe_schema(), indent=2)
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
    from distillcli.models.backbones import list_models
    from distillcli.registry import closest
    from distillcli.steps import STEPS

    sources = {"models": list_models, "datasets": DATASETS.names, "steps": STEPS.names, "losses": LOSSES.names}
    if what not in sources:
        guess = closest(what, list(sources))
        raise OptionError(f"cannot list {what!r}", f"did you mean {guess!r}?" if guess else f"choose one of {', '.join(sources)}")
    names = sources[what](pattern)
    Output(as_json).result({what: names}, "\n".join(names))


def main() -> None:
    from distillcli.runtime import keep_freed_memory

    keep_freed_memory()
    app()


from distillcli import cli_files  # noqa: E402,F401  (registers the commands on model files)
from distillcli import cli_reports  # noqa: E402,F401  (registers report and compare)
