"""Reading a recipe: a file or a mapping -> the typed recipe, every problem at once; relative
paths anchored to the recipe's folder; the resolved recipe as saved with every run and model."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from distillcli.errors import RecipeError
from distillcli.recipe.checks import semantic_problems
from distillcli.recipe.model import RecipeBase, recipe_model
from distillcli.recipe.problems import later_problems, problem_text
from distillcli.recipe.yaml_file import apply_override, normalise_steps, read_yaml, with_lines


def validate_raw(raw: dict[str, Any], source: str = "recipe") -> RecipeBase:
    """Typed recipe from a raw mapping; raises RecipeError listing every problem."""
    normalise_steps(raw)
    model = recipe_model()
    try:
        recipe = model.model_validate(raw)
    except ValidationError as e:
        problems = [problem_text(err, model) for err in e.errors()]
        raise RecipeError(problems + later_problems(raw, e, problems, model), source=source) from None
    problems = semantic_problems(recipe)
    if problems:
        raise RecipeError(problems, source=source)
    return recipe



def read_recipe(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> dict[str, Any]:
    """A recipe file plus ``--set`` overrides, as plain data. Relative paths written in the file
    are relative to the file's folder (so a recipe works from any directory); ``--set`` paths are
    relative to where distill runs."""
    raw = read_yaml(path)
    anchor_paths(raw, Path(path).parent)
    for assignment in overrides:
        apply_override(raw, assignment)
    return raw


def load_recipe(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> RecipeBase:
    """A recipe file plus ``--set`` overrides, validated (see ``read_recipe``)."""
    return validate_file(read_recipe(path, overrides), path)


def validate_file(raw: dict[str, Any], path: str | Path) -> RecipeBase:
    """``validate_raw`` of what ``read_recipe(path)`` returned: each problem names its line in the file."""
    try:
        return validate_raw(raw, source=str(path))
    except RecipeError as e:
        raise RecipeError(with_lines(e.problems, Path(path)), source=str(path), hint=e.hint) from None


_PATH_KEYS = (("data", "root"), ("teacher", "checkpoint"), ("student", "checkpoint"), (None, "cache_dir"))


def anchor_paths(raw: dict[str, Any], folder: Path) -> None:
    """Make the file's relative paths absolute against ``folder`` (``~`` paths are left to the user's home)."""
    teachers = raw.get("teachers")
    places = [(raw if section is None else raw.get(section), key) for section, key in _PATH_KEYS]
    places += [(t, "checkpoint") for t in teachers] if isinstance(teachers, list) else []
    specs = [raw.get(role) for role in ("teacher", "student")] + (teachers if isinstance(teachers, list) else [])
    for spec in specs:  # a model's own files: py:<file.py>:<fn>, and weights given as a path
        if isinstance(spec, dict) and isinstance(spec.get("arch"), str) and spec["arch"].startswith("py:"):
            location, sep, attr = spec["arch"][3:].rpartition(":")
            if location.endswith(".py") and sep:
                spec["arch"] = f"py:{_anchored(location, folder)}:{attr}"
        args = spec.get("args") if isinstance(spec, dict) else None
        places += [(args, key) for key in ("weights", "pretrained") if isinstance(args, dict)
                   and isinstance(args.get(key), str) and args[key].upper() != "DEFAULT"]
    for part, key in places:
        value = part.get(key) if isinstance(part, dict) else None
        if isinstance(value, str) and value:
            part[key] = _anchored(value, folder)


def _anchored(value: str, folder: Path) -> str:
    if value.startswith("~") or Path(value).is_absolute():
        return value
    return os.path.normpath(os.path.abspath(folder / value))


def recipe_schema() -> dict[str, Any]:
    return recipe_model().model_json_schema(by_alias=True)


def recipe_to_dict(recipe: RecipeBase) -> dict[str, Any]:
    """The resolved recipe as plain data (defaults filled in, paths absolute), as saved with every
    model and as the run's recipe.yaml: it means the same from any directory."""
    raw = recipe.model_dump(mode="json", by_alias=True, exclude={"trust_code"})  # consent is given per run
    anchor_paths(raw, Path.cwd())
    return raw


