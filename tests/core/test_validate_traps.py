"""`validate` catches plans that cannot be meant: each trap a problem in the one list, with its fix
and, for a recipe file, its line."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from distillcli.cli import app
from distillcli.errors import RecipeError
from distillcli.engine.pipeline import Pipeline
from distillcli.progress import SilentProgress
from distillcli.recipe import load_recipe, validate_raw
from tests.conftest import tiny_recipe


def problems(raw: dict) -> list[str]:
    with pytest.raises(RecipeError) as info:
        validate_raw(raw)
    return info.value.problems


def test_a_data_section_without_a_name_is_an_error(tmp_path: Path) -> None:
    assert problems(tiny_recipe(data={"root": str(tmp_path)})) == [
        "data.name: missing; name the dataset, e.g. name: imagefolder (`distill list datasets`); only a recipe "
        "without a data section gets the digits default"]
    raw = tiny_recipe()
    del raw["data"]
    assert validate_raw(raw).data.name == "digits"  # no data section at all: the default stays


def test_distilling_from_an_untrained_teacher_is_an_error() -> None:
    (problem,) = problems(tiny_recipe(steps=[{"distill": {"epochs": 1}}, {"train": {"model": "teacher"}}]))
    assert problem.startswith("steps[0].distill: the teacher is untrained") and "give teacher.checkpoint" in problem
    assert "`- train: {model: teacher}` before this step" in problem
    validate_raw(tiny_recipe())  # trained by the step before
    for teacher in ({"arch": "torchvision:resnet18", "args": {"weights": "DEFAULT"}},
                    {"arch": "timm:resnet18", "args": {"pretrained": True}}, {"arch": "py:my_models:build"}):
        validate_raw(tiny_recipe(teacher=teacher, steps=[{"distill": {"epochs": 1}}]))  # weights from elsewhere


@pytest.mark.parametrize("name, content, looks", [
    ("teacher.yaml", b"arch: resnet20\n", "is a YAML file"),
    ("weights.json", b'{"arch": "resnet20"}', "is a JSON file"),
    ("teacher.pt", b"not weights\nat all\n", "is a text file (its first line: 'not weights')"),
    ("teacher.bin", b"\x00\x01\x02\x03garbage", "starts with the bytes"),
])
def test_a_checkpoint_that_is_not_one_is_named_for_what_it_looks_like(tmp_path: Path, name, content, looks) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    (problem,) = problems(tiny_recipe(teacher={"arch": "cnn", "args": {"width": 8}, "checkpoint": str(path)}))
    assert problem.startswith(f"teacher.checkpoint: {path} {looks}") and "not a checkpoint" in problem, problem
    assert "give the weights file" in problem
    (problem,) = problems(tiny_recipe(student={"arch": "cnn", "args": {"width": 4}, "checkpoint": str(path)}))
    assert problem.startswith("student.checkpoint:") and looks in problem


def test_torch_and_model_files_pass_the_checkpoint_check(tmp_path: Path) -> None:
    state = {"w": torch.zeros(2)}
    torch.save(state, tmp_path / "zip.pth")  # b"PK": torch's zip archive
    torch.save(state, tmp_path / "legacy.th", _use_new_zipfile_serialization=False)  # b"\x80": a pickle
    (tmp_path / "w.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{}")
    (tmp_path / "m.onnx").write_bytes(b"\x08\x07\x12\x07pytorch")
    for name in ("zip.pth", "legacy.th", "w.safetensors", "m.onnx"):
        validate_raw(tiny_recipe(teacher={"arch": "cnn", "args": {"width": 8}, "checkpoint": str(tmp_path / name)}))


def _images(root: Path, files: list[str]) -> Path:
    for name in files:  # "a/": an empty folder
        folder = root / name if name.endswith("/") else (root / name).parent
        folder.mkdir(parents=True, exist_ok=True)
        if not name.endswith("/"):
            (root / name).write_bytes(b"")  # never decoded: the check lists folders only
    return root


def _folder_recipe(root: Path) -> dict:
    return tiny_recipe(data={"name": "imagefolder", "root": str(root), "image_size": 16})


def test_an_image_folder_without_its_layout(tmp_path: Path) -> None:
    good = _images(tmp_path / "good", ["train/cat/1.jpg", "train/dog/x/2.PNG", "val/cat/3.png", "val/dog/4.webp"])
    validate_raw(_folder_recipe(good))
    flat = _images(tmp_path / "flat", ["1.jpg", "2.jpg"])
    (problem,) = problems(_folder_recipe(flat))
    assert problem.startswith(f"data.root: {str(flat)!r} is not an image folder (no train/ folder; no val/ folder)")
    assert problem.endswith("lay it out as root/train/<class>/<image> and root/val/<class>/<image>, with the same "
                            "class folders in both")
    odd = _images(tmp_path / "odd", ["train/cat/1.jpg", "train/dog/notes.txt", "train/eel/", "val/cat/2.jpg",
                                     "val/fox/3.jpg"] + [f"train/c{i}/" for i in range(7)])
    (problem,) = problems(_folder_recipe(odd))
    assert "class folders without images in train/: c0, c1, c2, c3, c4 and 4 more" in problem
    assert "classes only in train/: c0, c1, c2, c3, c4 and 4 more" in problem and "classes only in val/: fox" in problem
    _images(tmp_path / "none", ["train/", "val/cat/1.jpg"])
    assert "no class folders in train/" in problems(_folder_recipe(tmp_path / "none"))[0]


def test_the_old_name_of_an_accuracy_budget_says_its_new_name() -> None:
    (problem,) = problems(tiny_recipe(steps=[{"sensitivity": {"budget": 0.5}}]))
    assert problem.startswith("steps[0].sensitivity") and "budget is now max_drop" in problem
    assert "write max_drop: 0.5" in problem
    assert validate_raw(tiny_recipe(steps=[{"sensitivity": {"max_drop": 0.5}}])).step_list()[0][1].max_drop == 0.5


def test_image_list_files_are_checked_before_the_run(tmp_path: Path) -> None:
    _images(tmp_path, ["pics/a.jpg", "pics/b.png"])
    (tmp_path / "train.csv").write_text("path,label\npics/a.jpg,cat\npics/gone.jpg,dog\n")
    (tmp_path / "val.csv").write_text("pics/b.png,cow\n")
    recipe = tiny_recipe(data={"name": "csv", "root": str(tmp_path), "image_size": 16})
    (problem,) = problems(recipe)
    assert problem.startswith("data.root: csv: the validation list has classes the training list lacks: cow")
    (tmp_path / "val.csv").write_text("pics/b.png,dog\n")
    (problem,) = problems(recipe)
    assert problem.startswith("data.root: csv: 1 listed image file(s) not found under") and "pics/gone.jpg (train.csv line 3)" in problem
    (tmp_path / "train.csv").write_text("pics/a.jpg,cat\npics/b.png,dog\n")
    validate_raw(recipe)


def test_a_student_larger_than_its_teacher_is_a_warning(tmp_path: Path) -> None:
    class Messages(SilentProgress):
        def __init__(self) -> None:
            self.lines: list[str] = []

        def message(self, text: str) -> None:
            self.lines.append(text)

    progress = Messages()
    recipe = tiny_recipe(student={"arch": "cnn", "args": {"width": 16}}, report={"latency": False},
                         steps=[{"evaluate": {}}])
    Pipeline(validate_raw(recipe), progress, out=tmp_path / "run").run()
    warnings = [line for line in progress.lines if "larger than its teacher" in line]
    assert len(warnings) == 1 and warnings[0].startswith("warning: the student (") and "swapped" in warnings[0]


def test_validate_warns_of_a_student_larger_than_its_teacher_before_any_model_is_built(tmp_path: Path) -> None:
    recipe = tmp_path / "swapped.yaml"
    recipe.write_text("name: swapped\nteacher:\n  arch: resnet20\nstudent:\n  arch: resnet56\n"
                      "steps:\n  - train: {model: teacher, epochs: 1}\n  - distill: {epochs: 1}\n")
    result = CliRunner().invoke(app, ["validate", str(recipe)])
    assert result.exit_code == 0, result.output
    assert ("warning: line 5: student.arch: resnet56 has 853,018 parameters, more than its teacher's 269,722 "
            "(resnet20); check that teacher and student are not swapped") in result.output
    recipe.write_text(recipe.read_text().replace("resnet20", "X").replace("resnet56", "resnet20").replace("X", "resnet56"))
    assert "warning" not in CliRunner().invoke(app, ["validate", str(recipe)]).output


@pytest.mark.parametrize("command", ["validate", "run"])
def test_a_recipe_path_that_does_not_exist_says_where_recipes_come_from(tmp_path: Path, command: str) -> None:
    result = CliRunner().invoke(app, [command, str(tmp_path / "missing.yaml")])
    assert result.exit_code == 2
    assert "missing.yaml: file not found" in result.output
    assert f"distill init {tmp_path / 'missing.yaml'}" in result.output and "recipes/" in result.output


def test_a_cross_field_error_does_not_hide_the_others() -> None:
    raw = tiny_recipe(data={"name": "imagenett"})
    raw["steps"].append({"prune": {"sparsity": 0.5, "channel_ratio": 0.5}})
    raw["steps"].append({"prune": {"sparsity": 2.0}})  # a bad value, then the step's own check once it is dropped
    found = problems(raw)
    assert any(p.startswith("steps[3].prune: give exactly one of sparsity") for p in found), found
    assert any(p.startswith("steps[4].prune.sparsity:") for p in found), found
    assert any(p.startswith("data.name: unknown dataset 'imagenett'") for p in found), found
    assert len(found) == 3, found


def test_a_recipe_file_s_problems_name_their_lines(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text("name: lines\n"
                    "data:\n"
                    "  root: /my/photos\n"
                    "teacher: {arch: cnn}\n"
                    "student: {arch: cnn, args: {widht: 2}}\n"
                    "steps:\n"
                    "  - train: {model: teacher, epochs: 1}\n"
                    "  - prune:\n"
                    "      sparsity: 0.5\n"
                    "      channel_ratio: 0.5\n")
    with pytest.raises(RecipeError) as info:
        load_recipe(path)
    found = info.value.problems
    assert any(p.startswith("line 2: data.name: missing") for p in found), found
    assert any(p.startswith("line 5: student.args: model 'cnn' has no option 'widht'") for p in found), found
    assert any(p.startswith("line 8: steps[1].prune: give exactly one of") for p in found), found
    assert [p.partition(": ")[0] for p in found] == ["line 2", "line 5", "line 8"]  # in the file's order
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 2 and "line 2: data.name: missing" in result.output
