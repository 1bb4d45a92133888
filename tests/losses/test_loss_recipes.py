"""The distill step's `loss:` option: validation, did-you-mean, schema, and a tiny run."""

from __future__ import annotations

import math

import pytest

from distillcli.errors import RecipeError
from distillcli.losses.kd import KnowledgeDistillation
from distillcli.pipeline import Pipeline
from distillcli.progress import SilentProgress
from distillcli.recipe import load_recipe, recipe_schema, recipe_to_dict, validate_raw
from distillcli.steps.distill import DistillConfig
from tests.conftest import tiny_recipe

pytestmark = pytest.mark.usefixtures("one_thread")
COMBINED = [{"kd": {"weight": 1.0, "temperature": 4}},
            {"fitnet": {"weight": 0.5, "teacher_layer": "net.stages.1", "student_layer": "net.stages.1"}}]


def distill_recipe(loss, epochs: int = 1) -> dict:
    return tiny_recipe(steps=[{"distill": {"epochs": epochs, "lr": 0.05, "loss": loss}}], report={"latency": False})


def problems(raw: dict) -> str:
    with pytest.raises(RecipeError) as info:
        validate_raw(raw)
    return "\n".join(info.value.problems)


def test_names_expand_to_the_paper_recipes():
    assert [t.method for t in DistillConfig(loss="dkd").loss] == ["ce", "dkd"]
    assert [t.method for t in DistillConfig(loss="dist").loss] == ["ce", "dist"]
    assert [t.method for t in DistillConfig().loss] == ["kd"]


def test_omitted_loss_is_the_plain_kd_objective():
    from distillcli.losses import make_objective
    from torch import nn

    cfg = DistillConfig(temperature=3.0, alpha=0.5)
    objective = make_objective(cfg.loss, nn.Linear(2, 2), cfg, 0.1)
    assert isinstance(objective, KnowledgeDistillation)
    assert (objective.temperature, objective.alpha, objective.label_smoothing) == (3.0, 0.5, 0.1)


def test_typos_get_did_you_mean():
    text = problems(distill_recipe([{"fitnte": {"teacher_layer": "a", "student_layer": "a"}}]))
    assert "steps[0].distill.loss[0].fitnte: unknown key; did you mean 'fitnet'?" in text
    text = problems(distill_recipe([{"dkd": {"bta": 8}}]))
    assert "steps[0].distill.loss[0].dkd.bta: unknown key; did you mean 'beta'?" in text
    assert "did you mean 'dkd'?" in problems(distill_recipe("dkdd"))
    assert "need layer names" in problems(distill_recipe("fitnet"))


def test_bounds_and_the_labels_counted_once():
    assert "dkd.beta" in problems(distill_recipe([{"dkd": {"beta": -1}}]))
    text = problems(distill_recipe([{"kd": {}}, {"ce": {}}]))
    assert "the hard labels count twice" in text
    validate_raw(distill_recipe([{"kd": {"alpha": 1.0}}, {"ce": {"weight": 0.5}}]))


def test_the_resolved_recipe_validates_again_and_the_schema_lists_the_methods():
    resolved = recipe_to_dict(validate_raw(distill_recipe(COMBINED)))
    assert resolved["steps"][0]["distill"]["loss"][1] == {"fitnet": COMBINED[1]["fitnet"]}
    assert recipe_to_dict(validate_raw(resolved)) == resolved
    text = str(recipe_schema())
    for method in ("dkd", "dist", "fitnet", "at", "warmup_epochs", "teacher_layers"):
        assert method in text


def test_kd_plus_fitnet_runs_and_the_adapter_is_not_saved(tmp_path, write_recipe):
    raw = distill_recipe(COMBINED)
    raw["steps"].insert(0, {"train": {"model": "teacher", "epochs": 1, "lr": 0.05}})
    result = Pipeline(load_recipe(write_recipe(raw)), SilentProgress(), out=tmp_path / "run").run()
    step = result.record.steps[1]
    assert step.curve and all(math.isfinite(r.train_loss) for r in step.curve)
    assert step.model_file is not None
    from distillcli.modelfile import load_model

    loaded = load_model(tmp_path / "run" / step.model_file)
    module = loaded.handle.module
    keys = list(module.state_dict())
    assert keys and not any("adapter" in k for k in keys)
    assert all(k.startswith(("net.", "mean", "std")) for k in keys), keys
