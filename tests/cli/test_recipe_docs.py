"""docs/recipes.md is generated from the recipe schema by scripts/recipe_docs.py; CI fails when
the schema changed and the file was not regenerated (`.venv/bin/python scripts/recipe_docs.py`)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _generator():
    spec = importlib.util.spec_from_file_location("recipe_docs", ROOT / "scripts" / "recipe_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_recipe_docs_are_current() -> None:
    ok, message = _generator().check(ROOT / "docs" / "recipes.md")
    assert ok, message


def test_check_mode_exits_1_on_a_stale_file(tmp_path: Path) -> None:
    gen = _generator()
    stale = tmp_path / "recipes.md"
    stale.write_text(gen.render() + "a line the schema does not give\n", encoding="utf-8")
    assert gen.main(["--check", "--out", str(stale)]) == 1
    assert gen.main(["--out", str(stale)]) == 0 and gen.main(["--check", "--out", str(stale)]) == 0


def test_every_recipe_key_is_documented() -> None:
    from distillcli.recipe import recipe_schema

    text = (ROOT / "docs" / "recipes.md").read_text(encoding="utf-8")
    schema = recipe_schema()
    objects = [schema] + list(schema.get("$defs", {}).values())
    for obj in objects:
        for key in obj.get("properties", {}):  # a row, or a step's own section
            assert f"| `{key}` |" in text or f"### `steps[].{key}`" in text, key
