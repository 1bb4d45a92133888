"""Hostile recipe files and --set overrides end in one RecipeError (exit 2), never a hang,
a traceback or "this is a bug"."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import yaml

from distillcli.errors import RecipeError
from distillcli.recipe import apply_override, load_recipe, read_yaml, recipe_schema, validate_raw
from tests.conftest import run_cli, tiny_recipe


def _message(excinfo: pytest.ExceptionInfo[RecipeError]) -> str:
    return str(excinfo.value)


def test_alias_bomb_is_refused_quickly(tmp_path: Path) -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(lines) + "\n")
    start = time.perf_counter()
    with pytest.raises(RecipeError, match="too large once its aliases are expanded") as excinfo:
        read_yaml(path)
    assert time.perf_counter() - start < 2
    assert str(path) in _message(excinfo)


@pytest.mark.parametrize("text", ["a:\n" + "- 1\n" * 250_000, "a: [" + "1," * 500_000 + "]\n"])
def test_many_values_stop_the_parser_early(tmp_path: Path, text: str) -> None:
    """Under 1 MiB, but pure-Python YAML would take seconds to read it all."""
    path = tmp_path / "long.yaml"
    path.write_text(text)
    start = time.perf_counter()
    with pytest.raises(RecipeError, match=r"too large \(more than"):
        read_yaml(path)
    assert time.perf_counter() - start < 2


def test_a_few_aliases_are_still_fine(tmp_path: Path) -> None:
    recipe = yaml.safe_dump(tiny_recipe(), sort_keys=False).replace("  batch_size: 32", "  batch_size: &bs 32")
    recipe = recipe.replace("val_size: 64", "val_size: *bs")
    path = tmp_path / "alias.yaml"
    path.write_text(recipe)
    assert load_recipe(path).data.val_size == 32


@pytest.mark.parametrize("text", ["a: &a [*a]\n", "a: " + "[" * 5000 + "]" * 5000 + "\n",
                                  "".join(" " * i + f"k{i}:\n" for i in range(200))])
def test_deep_or_self_referential_yaml(tmp_path: Path, text: str) -> None:
    path = tmp_path / "deep.yaml"
    path.write_text(text)
    with pytest.raises(RecipeError, match="nested too deeply|self-referential"):
        read_yaml(path)


def test_aliases_cannot_nest_deeper_than_the_limit(tmp_path: Path) -> None:
    chain = ["a0: &a0 [1]"] + [f"a{i}: &a{i} [*a{i - 1}]" for i in range(1, 40)]
    path = tmp_path / "chain.yaml"
    path.write_text("\n".join(chain) + "\n")
    with pytest.raises(RecipeError, match="nested too deeply once its aliases are expanded"):
        read_yaml(path)


@pytest.mark.parametrize("data", ["name: tiny\n".encode("utf-16"), bytes(range(256))])
def test_non_utf8_file(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "r.yaml"
    path.write_bytes(data)
    with pytest.raises(RecipeError, match="not UTF-8 text"):
        read_yaml(path)


def test_oversized_file(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_bytes(b"# " + b"x" * (1 << 20) + b"\nname: x\n")
    with pytest.raises(RecipeError, match="larger than 1 MiB"):
        read_yaml(path)


@pytest.mark.parametrize("text", ["name: 2024-13-45\n", "seed: " + "9" * 5000 + "\n"])
def test_values_yaml_cannot_construct(tmp_path: Path, text: str) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(text)
    with pytest.raises(RecipeError, match="a value cannot be read"):
        read_yaml(path)


def test_unreadable_paths(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    cases = {tmp_path: "is a directory", fifo: "not a regular file", Path("/dev/zero"): "not a regular file",
             tmp_path / ("a" * 5000): "File name too long", tmp_path / "missing.yaml": "file not found"}
    for path, cause in cases.items():
        with pytest.raises(RecipeError, match=cause) as excinfo:
            read_yaml(path)
        assert len(_message(excinfo)) < 600  # a 5000-character path is shortened


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions")
def test_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "secret.yaml"
    path.write_text("name: x\n")
    path.chmod(0)
    with pytest.raises(RecipeError, match="Permission denied"):
        read_yaml(path)


@pytest.mark.parametrize("assignment, cause", [
    ("seed.x=1", "seed holds the value 0, not a mapping"),
    ("steps.0.train.epochs.deep=1", "holds the value 2, not a mapping"),
    ("steps.9.epochs=1", "index 9 is out of range"),
    ("steps.²=1", "is not an index into a list"),
    ("steps.99999999999999999999.epochs=1", "is not an index"),
    ("data.name.x.y=1", "not a mapping"),
    ("x=" + "[" * 100 + "]" * 100, "nested too deeply"),
    ("a=" + "." * 100, None),  # plain text: accepted here, refused by validation
])
def test_overrides(assignment: str, cause: str | None) -> None:
    raw = tiny_recipe()
    if cause is None:
        apply_override(raw, assignment)
        return
    with pytest.raises(RecipeError, match=cause):
        apply_override(raw, assignment)


@pytest.mark.parametrize("changes, key", [
    ({"seed": 2e70}, "seed"), ({"seed": -1}, "seed"), ({"seed": 2**32}, "seed"),
    ({"threads": 100_000}, "threads"), ({"threads": 0}, "threads"),
    ({"data": {"name": "synthetic", "batch_size": 10**9}}, "data.batch_size"),
    ({"data": {"name": "synthetic", "image_size": 5000}}, "data.image_size"),
    ({"data": {"name": "synthetic", "train_subset": 10**12}}, "data.train_subset"),
    ({"data": {"name": "synthetic", "train_size": 10**6, "image_size": 256}}, "256 MiB"),
    ({"data": {"name": "synthetic", "mean": [float("nan")] * 3}}, "data.mean[0]"),
    ({"data": {"name": "synthetic", "workers": 10**6}}, "data.workers"),
    ({"steps": [{"train": {"epochs": 10**9}}]}, "steps[0].train.epochs"),
    ({"steps": [{"train": {"lr": float("inf")}}]}, "steps[0].train.lr"),
    ({"steps": [{"train": {"epochs": 10, "milestones": [10**9]}}]}, "steps[0].train.milestones[0]"),
    ({"steps": [{"share": {"iterations": 10**9}}]}, "steps[0].share.iterations"),
    ({"steps": [{"prune": {"sparsity": 0.5, "iterations": 10**6, "schedule": "iterative"}}]}, "iterations"),
    ({"steps": [{"prune": {"target_mac_reduction": 1e300}}]}, "target_mac_reduction"),
    ({"steps": [{"quantize": {"calibration_batches": 10**9}}]}, "calibration_batches"),
])
def test_numbers_are_bounded(changes: dict, key: str) -> None:
    with pytest.raises(RecipeError, match=key.replace("[", r"\[")):
        validate_raw(tiny_recipe(**changes))


def test_bounds_keep_the_schema_and_sane_values() -> None:
    schema = recipe_schema()
    assert schema["properties"]["seed"]["maximum"] == 2**32 - 1
    validate_raw(tiny_recipe(seed=2**32 - 1, threads=1024))


@pytest.mark.parametrize("name", ["../x.onnx", "/tmp/x.onnx", "a/b.onnx", "..", "", "x\\y.onnx", "c:x.onnx",
                                  "a\x00b.onnx", "x" * 300 + ".onnx"])
def test_export_name_must_be_a_plain_file_name(name: str) -> None:
    recipe = tiny_recipe(steps=[{"export": {"name": name}}])
    with pytest.raises(RecipeError, match=r"steps\[0\]\.export\.name"):
        validate_raw(recipe)


def test_export_name_plain_is_fine() -> None:
    validate_raw(tiny_recipe(steps=[{"export": {"name": "student-v2.onnx"}}]))


def test_cli_hostile_recipes_exit_2(tmp_path: Path, write_recipe) -> None:
    """The real command, in a fresh process: one message naming the cause, exit 2, no traceback."""
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("a: &a [x, x, x, x, x, x, x, x, x, x]\n"
                    + "".join(f"{c}: &{c} [{', '.join([f'*{p}'] * 10)}]\n" for p, c in zip("abcdefgh", "bcdefghi")))
    cases = [(["validate", str(bomb)], "aliases are expanded"),
             (["validate", str(tmp_path)], "is a directory"),
             (["run", str(write_recipe(tiny_recipe())), "--set", "seed.x=1"], "seed holds the value 0")]
    for args, cause in cases:
        start = time.perf_counter()
        proc = run_cli(*args)
        assert proc.returncode == 2, (args[0], proc.stderr)
        assert proc.stderr.startswith("error:") and cause in proc.stderr
        assert "this is a bug" not in proc.stderr and "Traceback" not in proc.stderr
        assert time.perf_counter() - start < 30


def test_keys_yaml_reads_as_numbers_or_null(tmp_path: Path) -> None:
    """`- 1: {}` or `null: x` are names to a recipe; did-you-mean needs them as text."""
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(tiny_recipe(steps=[{1: {}}], **{"null": 1}), sort_keys=False))
    with pytest.raises(RecipeError, match="unknown step '1'") as excinfo:
        load_recipe(path)
    assert "(top level)" in str(excinfo.value) or "null" in str(excinfo.value)
