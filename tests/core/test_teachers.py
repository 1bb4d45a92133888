"""Several teachers (recipe `teachers:`): one ensemble whose logits are the weighted mean of theirs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

from distillcli.cli import app
from distillcli.errors import OptionError, RecipeError
from distillcli.losses.features import FeatureTap, find_layer
from distillcli.modelfile import file_header, save_model
from distillcli.models.build import build_model
from distillcli.models.ensemble import TeacherEnsemble
from distillcli.models.handle import ArchSpec, ModelHandle
from distillcli.engine.pipeline import Pipeline
from distillcli.progress import SilentProgress
from distillcli.recipe import load_recipe, validate_raw
from distillcli.record import comparable
from tests.conftest import run_json, tiny_recipe, tiny_synthetic


def _model(width: int, mean: float, std: float, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model(ArchSpec("cnn", 4, 3, [mean] * 3, [std] * 3, {"width": width})).eval()


def test_ensemble_logits_are_the_weighted_mean_of_the_members_logits(one_thread):
    a, b = _model(8, 0.5, 0.25, 0), _model(4, 0.1, 0.9, 1)  # each with its own normalisation
    ensemble = TeacherEnsemble([a, b], [1.0, 3.0]).eval()
    x = torch.rand(5, 3, 16, 16)
    with torch.no_grad():
        by_hand = 0.25 * a(x) + 0.75 * b(x)
        assert torch.allclose(ensemble(x), by_hand, atol=1e-6)
        assert not torch.allclose(ensemble(x), (a(x) + b(x)) / 2, atol=1e-3)  # the weights matter
    assert ensemble.weights.tolist() == [0.25, 0.75]
    keys = ensemble.state_dict()  # members and weights: what a cache keyed on the state_dict sees
    assert "weights" in keys and any(k.startswith("1.net.") for k in keys)


def test_feature_layers_are_named_by_member_index(one_thread):
    a, b = _model(8, 0.5, 0.25, 0), _model(4, 0.1, 0.9, 1)
    ensemble = TeacherEnsemble([a, b], [1.0, 1.0]).eval()
    inner = next(n for n, _ in b.named_modules() if n.startswith("net.") and n.count(".") == 1)
    assert find_layer(ensemble, f"1.{inner}", "teacher") is b.get_submodule(inner)
    x = torch.rand(2, 3, 16, 16)
    with torch.no_grad(), FeatureTap(ensemble, [f"1.{inner}"], "teacher") as feats:
        ensemble(x)
    with torch.no_grad(), FeatureTap(b, [inner], "teacher") as alone:
        b(x)
    assert torch.equal(feats[f"1.{inner}"], alone[inner])
    with pytest.raises(OptionError, match=r"did you mean '1\.net"):
        find_layer(ensemble, f"1.{inner}x", "teacher")


@pytest.fixture(scope="module")
def teacher_files(tmp_path_factory) -> list[Path]:
    """Two teacher model files of different widths for the tiny synthetic data."""
    folder = tmp_path_factory.mktemp("teachers")
    data = tiny_synthetic()
    paths = []
    for i, width in enumerate((8, 4)):
        arch = ArchSpec("cnn", data.num_classes, 3, list(data.mean), list(data.std), {"width": width})
        torch.manual_seed(i)
        handle = ModelHandle(build_model(arch), arch)
        header = file_header(handle, class_names=data.class_names, input_shape=data.input_shape, data=data.spec)
        paths.append(save_model(folder / f"t{i}.pt", handle, header))
    return paths


def _recipe(files: list[Path], **changes) -> dict:
    teachers = [{"checkpoint": str(files[0]), "weight": 1.0}, {"checkpoint": str(files[1]), "weight": 3.0}]
    base = {"teacher": None, "teachers": teachers, "steps": [{"distill": {"epochs": 1, "lr": 0.05}}, {"evaluate": {}}],
            "report": {"latency_repeats": 1, "latency_batches": [4]}}
    return tiny_recipe(**{**base, **changes})


def _problems(raw: dict) -> str:
    with pytest.raises(RecipeError) as e:
        validate_raw(raw)
    return "\n".join(e.value.problems)


def test_teacher_and_teachers_together_is_a_recipe_error(teacher_files):
    raw = _recipe(teacher_files)
    raw["teacher"] = {"arch": "cnn"}
    assert "teacher, teachers: give one teacher (teacher:) or several (teachers:), not both" in _problems(raw)


def test_what_several_teachers_refuse(teacher_files):
    one = _recipe(teacher_files)
    one["teachers"] = one["teachers"][:1]
    assert "teachers: list at least two models" in _problems(one)
    untrained = _recipe(teacher_files)
    untrained["teachers"][1] = {"arch": "cnn"}
    assert "teachers[1]: needs a checkpoint" in _problems(untrained)
    trained = _recipe(teacher_files, steps=[{"train": {"model": "teacher", "epochs": 1}}, {"distill": {"epochs": 1}}])
    assert "steps[0].train: several teachers are used as they are" in _problems(trained)
    copied = _recipe(teacher_files, student={"from": "teacher"})
    assert "student.from: 'teacher' needs a single teacher" in _problems(copied)
    zero = _recipe(teacher_files)
    zero["teachers"][0]["weight"] = 0
    assert "teachers[0].weight" in _problems(zero)


def _cli(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


def test_validate_and_dry_run_show_the_teachers(teacher_files, write_recipe, tmp_path, one_thread):
    path = str(write_recipe(_recipe(teacher_files)))
    checked = json.loads(_cli("validate", path, "--json"))
    assert [(t["checkpoint"], t["weight"]) for t in checked["teachers"]] == \
        [(str(teacher_files[0]), 0.25), (str(teacher_files[1]), 0.75)]
    text = _cli("validate", path)
    assert f"teacher[0]: {teacher_files[0]}  weight 0.25" in text and "teacher[1]" in text

    out = str(tmp_path / "run")
    plan = json.loads(_cli("run", path, "--dry-run", "--out", out, "--json"))
    members = plan["models"]["teachers"]
    assert plan["models"]["teacher"]["arch"] == "ensemble"
    assert [m["weight"] for m in members] == [0.25, 0.75] and [m["arch"] for m in members] == ["cnn", "cnn"]
    assert plan["models"]["teacher"]["params"] == sum(m["params"] for m in members)
    assert [m["source"] for m in members] == [str(f) for f in teacher_files]
    text = _cli("run", path, "--dry-run", "--out", out)
    assert "teacher: ensemble" in text and "teacher[1]: cnn  weight 0.75" in text
    assert not (tmp_path / "run").exists()


def test_two_teachers_run_end_to_end(teacher_files, write_recipe, tmp_path):
    path = write_recipe(_recipe(teacher_files))
    run_json("run", str(path), "--out", str(tmp_path / "run"))
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    members = metrics["teachers"]
    assert [(t["index"], t["checkpoint"], t["weight"]) for t in members] == \
        [(0, str(teacher_files[0]), 0.25), (1, str(teacher_files[1]), 0.75)]
    assert all(t["measures"]["top1"] is not None and t["measures"]["file_bytes"] for t in members)
    base = metrics["baseline"]
    assert base["source"] == "teacher" and base["label"] == "the ensemble of 2 teachers"
    assert base["measures"]["params"] == sum(t["measures"]["params"] for t in members)
    assert base["measures"]["file_bytes"] == sum(t["measures"]["file_bytes"] for t in members)
    assert [s["kind"] for s in metrics["steps"]] == ["distill", "evaluate"]
    models = sorted(p.name for p in (tmp_path / "run" / "models").iterdir())
    assert "student.pt" in models and not any(n.startswith("teacher") for n in models)  # no copies of the teachers
    report = (tmp_path / "run" / "report.md").read_text()
    assert "teacher[1] cnn, weight 0.75" in report
    assert "teacher[0] cnn (weight 0.25)" in (tmp_path / "run" / "report.html").read_text()


class Kill(BaseException):
    """Stands for SIGKILL: nothing catches it."""


def test_a_killed_run_resumes_with_its_teachers(teacher_files, write_recipe, tmp_path, monkeypatch, one_thread):
    path = write_recipe(_recipe(teacher_files, report={"latency": False}))

    def run(out: Path, **kw: Any) -> dict:
        Pipeline(load_recipe(path), SilentProgress(), out=out, **kw).run()
        return json.loads((out / "metrics.json").read_text())

    expected = run(tmp_path / "whole")
    original = Pipeline._run_step

    def step(self: Pipeline, index: int, kind: str, cfg: Any) -> None:
        if index == 1:
            raise Kill
        original(self, index, kind, cfg)

    with monkeypatch.context() as m:
        m.setattr(Pipeline, "_run_step", step)
        with pytest.raises(Kill):
            run(tmp_path / "run")
    got = run(tmp_path / "run", resume=True)
    assert len(got["teachers"]) == 2 and comparable(got) == comparable(expected)
