"""Teacher and student sections: copies, truncated students, teachers from model files."""

from __future__ import annotations

import torch

from distillcli.modelfile import file_header, load_model, save_model
from distillcli.engine.models import build_from_spec, student_from_teacher
from distillcli.data import load_data
from distillcli.recipe import validate_raw
from tests.conftest import tiny_recipe


def _setup(**changes):
    recipe = validate_raw(tiny_recipe(**changes))
    data = load_data(recipe.data, seed=0)
    return recipe, data


def test_student_from_teacher_is_an_independent_copy():
    recipe, data = _setup(teacher={"arch": "resnet8"}, student={"from": "teacher"})
    teacher = build_from_spec(recipe.teacher, data)
    student = student_from_teacher(recipe.student, teacher, data)
    x = torch.rand(2, 3, 16, 16)
    teacher.module.eval(), student.module.eval()
    assert torch.equal(teacher.module(x), student.module(x))
    with torch.no_grad():
        student.module.net.linear.weight.zero_()
    assert not torch.equal(teacher.module.net.linear.weight, student.module.net.linear.weight)


def test_keep_blocks_student_rebuilds_from_its_file(tmp_path):
    recipe, data = _setup(teacher={"arch": "resnet20"}, student={"from": "teacher", "keep_blocks": 4})
    teacher = build_from_spec(recipe.teacher, data)
    student = student_from_teacher(recipe.student, teacher, data)
    assert student.arch.keep_blocks == 4 and student.arch.name == "resnet20"
    n_student = sum(p.numel() for p in student.module.parameters())
    assert n_student < sum(p.numel() for p in teacher.module.parameters())
    # the kept blocks start from the teacher's weights
    assert torch.equal(student.module.net.blocks[0].conv1.weight, teacher.module.net.layer1[0].conv1.weight)
    header = file_header(student, class_names=data.class_names, input_shape=data.input_shape, data=data.spec)
    path = save_model(tmp_path / "s.pt", student, header)
    loaded = load_model(path).handle.module
    x = torch.rand(3, 3, 16, 16)
    student.module.eval()
    assert torch.equal(loaded(x), student.module(x)) and loaded(x).shape == (3, 4)


def test_teacher_from_own_model_file(tmp_path):
    recipe, data = _setup()
    teacher = build_from_spec(recipe.teacher, data)
    header = file_header(teacher, class_names=data.class_names, input_shape=data.input_shape, data=data.spec)
    path = save_model(tmp_path / "t.pt", teacher, header)
    recipe2, _ = _setup(teacher={"checkpoint": str(path)})
    again = build_from_spec(recipe2.teacher, data)
    x = torch.rand(2, 3, 16, 16)
    teacher.module.eval()
    assert again.arch == teacher.arch and torch.equal(again.module(x), teacher.module(x))


def test_teacher_normalisation_is_its_own():
    recipe, data = _setup(teacher={"arch": "cnn", "mean": [0.1, 0.2, 0.3], "std": [0.5, 0.5, 0.5]})
    teacher = build_from_spec(recipe.teacher, data)
    assert torch.allclose(teacher.module.mean.flatten(), torch.tensor([0.1, 0.2, 0.3]))
    student = build_from_spec(recipe.student, data)
    assert torch.allclose(student.module.mean.flatten(), torch.tensor(data.mean))
