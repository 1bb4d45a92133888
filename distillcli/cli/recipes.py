"""`distill validate` and `distill schema`: a recipe checked, and the schemas, without torch."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Optional

import typer

from distillcli.cli.app import app
from distillcli.cli.options import JsonOpt, SetOpt, guarded
from distillcli.output import Output


@app.command()
@guarded
def validate(recipe: Path = typer.Argument(..., metavar="RECIPE", help="the recipe YAML file"),
             set_: Optional[list[str]] = SetOpt, as_json: bool = JsonOpt) -> None:
    """Check a recipe without running it; reports every problem at once.

    Example: distill validate recipes/resnet56_resnet20_cifar10.yaml
    """
    from distillcli.recipe import read_recipe, validate_file
    from distillcli.recipe.checks import recipe_warnings
    from distillcli.recipe.yaml_file import with_lines

    raw = read_recipe(recipe, list(set_ or []))
    if "auto" in raw:
        _validate_auto(raw, recipe, as_json)
        return
    r = validate_file(raw, recipe)
    steps = [kind for kind, _ in r.step_list()]
    result: dict[str, Any] = {"valid": True, "name": r.name, "steps": steps}
    text = f"{recipe}: valid ({len(steps)} steps: {' -> '.join(steps) or 'none'})"
    warnings = with_lines(recipe_warnings(r), recipe)
    if warnings:
        result["warnings"] = warnings
        text += "".join(f"\n  warning: {w}" for w in warnings)
    if r.teachers:
        total = sum(t.weight for t in r.teachers)
        result["teachers"] = [{"arch": t.arch, "checkpoint": t.checkpoint, "weight": t.weight / total}
                              for t in r.teachers]
        text += "\n" + "\n".join(f"  teacher[{i}]: {t['checkpoint']}" + (f" ({t['arch']})" if t["arch"] else "")
                                  + f"  weight {t['weight']:.3g}" for i, t in enumerate(result["teachers"]))
    Output(as_json).result(result, text)


def _validate_auto(raw: dict[str, Any], recipe: Path, as_json: bool) -> None:
    """An auto recipe: its `auto:` section, and the rest checked as the plain recipe every trial extends."""
    from distillcli.auto.config import split_auto_recipe
    from distillcli.recipe import validate_raw

    base, cfg = split_auto_recipe(raw, str(recipe))
    r = validate_raw({**base, "steps": [{"evaluate": {}}]}, source=str(recipe))
    Output(as_json).result({"valid": True, "name": r.name, "auto": cfg.model_dump(mode="json")},
                           f"{recipe}: valid auto recipe (objective {cfg.objective}, max drop {cfg.max_drop:g} pt, "
                           f"budget {cfg.budget}); run it with: distill auto {recipe}")


@app.command()
@guarded
def schema(out: Optional[Path] = typer.Option(None, "--out", help="write to this file instead of stdout"),
           metrics: bool = typer.Option(False, "--metrics", metavar="", help="the schema of metrics.json instead of the recipe's")) -> None:
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
