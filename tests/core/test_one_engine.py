"""One engine: the commands on a model file run the same step as a recipe does, and give the
same numbers; `distill validate` catches what would fail later; metrics.json has a schema."""

from __future__ import annotations

import json

import pytest

from distillcli.errors import RecipeError
from distillcli.engine.file_recipe import run_on_file
from distillcli.engine.pipeline import Pipeline
from distillcli.progress import SilentProgress
from distillcli.recipe import load_recipe, validate_raw
from distillcli.record import RunRecord, metrics_schema
from distillcli.steps.prune import PruneConfig
from tests.conftest import run_cli, tiny_recipe

pytestmark = pytest.mark.usefixtures("one_thread")
PRUNE = {"method": "channel", "sparsity": 0.25, "latency": False, "finetune": {"epochs": 1, "lr": 0.02}}


def test_prune_command_gives_the_numbers_of_the_prune_step_in_a_recipe(tmp_path, write_recipe) -> None:
    raw = tiny_recipe(teacher=None, steps=[{"train": {"epochs": 1, "lr": 0.05}}, {"prune": PRUNE}],
                      report={"latency": False})
    result = Pipeline(load_recipe(write_recipe(raw)), SilentProgress(), out=tmp_path / "run").run()
    trained, pruned = result.record.steps
    assert trained.model_file is not None
    source = tmp_path / "run" / trained.model_file
    run = run_on_file(source, "prune", PruneConfig(**PRUNE), SilentProgress(), output=tmp_path / "p.pt",
                      device="cpu", latency=False)
    assert run.before is not None and run.before.top1 == trained.measures.top1
    for key in ("top1", "top5", "loss", "params", "macs"):
        assert getattr(run.after, key) == getattr(pruned.measures, key), key
    assert [r.train_loss for r in run.record.steps[0].curve] == [r.train_loss for r in pruned.curve]
    assert run.output == tmp_path / "p.pt" and run.output.is_file()


@pytest.mark.parametrize("change, problem", [
    ({"steps": [{"quantize": {"method": "static"}}, {"prune": {"sparsity": 0.5}}]},
     "steps[1].prune: needs a float PyTorch model, but steps[0] quantized the student"),
    ({"data": {"name": "cifar10", "root": "/nonexistent/cifar", "train_size": 10}},
     "data.train_size: dataset 'cifar10' does not use it"),
    ({"data": {"name": "cifar10", "root": "/nonexistent/cifar"}},
     "data.root: '/nonexistent/cifar' does not exist; point it at the dataset's folder or set data.download"),
    ({"teacher": None, "steps": [{"distill": {}}]}, "steps[0].distill: needs a teacher section"),
])
def test_validate_catches_what_would_fail_later(change, problem) -> None:
    with pytest.raises(RecipeError) as info:
        validate_raw(tiny_recipe(**change))
    assert any(p.startswith(problem) for p in info.value.problems), info.value.problems


def test_metrics_json_follows_its_published_schema(tmp_path, write_recipe) -> None:
    raw = tiny_recipe(steps=[{"train": {"model": "teacher", "epochs": 1}}, {"evaluate": {}}], report={"latency": False})
    Pipeline(load_recipe(write_recipe(raw)), SilentProgress(), out=tmp_path / "run").run()
    data = json.loads((tmp_path / "run" / "metrics.json").read_text())
    record = RunRecord.model_validate(data)
    assert record.schema_version == 4 and record.baseline is not None
    assert record.baseline.source == "teacher_step" and record.baseline.step == 0
    schema = json.loads(run_cli("schema", "--metrics").stdout)
    assert schema == json.loads(json.dumps(metrics_schema()))
    assert {"run", "data", "baseline", "steps"} <= set(schema["properties"])
    assert not (tmp_path / "run" / "models" / "01-evaluate-student.pt").exists()  # an unchanged model is not copied


def test_every_mistake_comes_in_one_round() -> None:
    raw = tiny_recipe(data={"name": "cifar10", "root": "/nonexistent", "train_size": 5}, seed="zero")
    raw["steps"][1] = {"distill": {"temprature": 3}}
    with pytest.raises(RecipeError) as info:
        validate_raw(raw)
    text = "\n".join(info.value.problems)
    for part in ("seed:", "temprature: unknown key", "data.train_size:", "data.root: '/nonexistent' does not exist"):
        assert part in text


def test_a_resolved_recipe_validates_again() -> None:
    """recipe.yaml lists every default; `distill resume` must be able to read it back."""
    from distillcli.recipe import recipe_to_dict

    raw = tiny_recipe(steps=[{"quantize": {"method": "static"}}, {"export": {"format": "onnx"}}])
    resolved = recipe_to_dict(validate_raw(raw))
    assert recipe_to_dict(validate_raw(resolved)) == resolved


def test_validate_names_an_unknown_torchvision_model() -> None:
    with pytest.raises(RecipeError, match="unknown torchvision model 'resnet1800'; did you mean 'torchvision:resnet18'"):
        validate_raw(tiny_recipe(student={"arch": "torchvision:resnet1800"}))
