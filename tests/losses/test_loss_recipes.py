"""The distill step's `loss:` option: validation, did-you-mean, schema, and a tiny run."""

from __future__ import annotations

import math

import pytest

from distillcli.errors import RecipeError
from distillcli.losses.kd import KDTerm
from distillcli.engine.pipeline import Pipeline
from distillcli.progress import SilentProgress
from distillcli.recipe import load_recipe, recipe_schema, recipe_to_dict, validate_raw
from distillcli.steps.distill import DistillConfig
from tests.conftest import tiny_recipe

pytestmark = pytest.mark.usefixtures("one_thread")
COMBINED = [{"kd": {"weight": 1.0, "temperature": 4}},
            {"fitnet": {"weight": 0.5, "teacher_layer": "net.stages.1", "student_layer": "net.stages.1"}}]


def distill_recipe(loss, epochs: int = 1) -> dict:
    """The teacher trained for an epoch (distilling from an untrained one is refused), then distill."""
    return tiny_recipe(steps=[{"train": {"model": "teacher", "epochs": 1, "lr": 0.05}},
                              {"distill": {"epochs": epochs, "lr": 0.05, "loss": loss}}], report={"latency": False})


def problems(raw: dict) -> str:
    with pytest.raises(RecipeError) as info:
        validate_raw(raw)
    return "\n".join(info.value.problems)


def test_names_expand_to_the_paper_recipes():
    assert [t.method for t in DistillConfig(loss="dkd").loss] == ["ce", "dkd"]
    assert [t.method for t in DistillConfig(loss="dist").loss] == ["ce", "dist"]
    assert [t.method for t in DistillConfig().loss] == ["kd"]


def test_a_bare_name_in_a_list_is_that_term_with_its_defaults():
    at = {"at": {"teacher_layers": "stages", "student_layers": "stages"}}
    cfg = DistillConfig(loss=["kd", at])
    assert [t.method for t in cfg.loss] == ["kd", "at"] and cfg.loss[0] == DistillConfig(loss=[{"kd": {}}, at]).loss[0]
    assert [t.method for t in DistillConfig(loss=["dkd", "ce"]).loss] == ["dkd", "ce"]  # the term, not dkd's preset
    assert "unknown loss name 'kdd'; did you mean 'kd'?" in problems(distill_recipe(["kdd", at]))


def test_omitted_loss_is_the_plain_kd_objective():
    from distillcli.losses import make_objective
    from torch import nn

    cfg = DistillConfig(temperature=3.0, alpha=0.5)
    objective = make_objective(cfg.loss, nn.Linear(2, 2), cfg, 0.1)
    (weight, term), = objective.terms
    assert isinstance(term, KDTerm) and weight == 1.0
    assert (term.temperature, term.alpha, term.label_smoothing) == (3.0, 0.5, 0.1)


def test_typos_get_did_you_mean():
    text = problems(distill_recipe([{"fitnte": {"teacher_layer": "a", "student_layer": "a"}}]))
    assert "steps[1].distill.loss[0].fitnte: unknown key; did you mean 'fitnet'?" in text
    text = problems(distill_recipe([{"dkd": {"bta": 8}}]))
    assert "steps[1].distill.loss[0].dkd.bta: unknown key; did you mean 'beta'?" in text
    assert "did you mean 'dkd'?" in problems(distill_recipe("dkdd"))
    assert "need layer names" in problems(distill_recipe("fitnet"))


def test_bounds_and_the_labels_counted_once():
    assert "dkd.beta" in problems(distill_recipe([{"dkd": {"beta": -1}}]))
    text = problems(distill_recipe([{"kd": {}}, {"ce": {}}]))
    assert "the hard labels count twice" in text
    validate_raw(distill_recipe([{"kd": {"alpha": 1.0}}, {"ce": {"weight": 0.5}}]))


def test_the_resolved_recipe_validates_again_and_the_schema_lists_the_methods():
    resolved = recipe_to_dict(validate_raw(distill_recipe(COMBINED)))
    assert resolved["steps"][1]["distill"]["loss"][1] == {"fitnet": COMBINED[1]["fitnet"]}
    assert recipe_to_dict(validate_raw(resolved)) == resolved
    text = str(recipe_schema())
    for method in ("dkd", "dist", "fitnet", "at", "warmup_epochs", "teacher_layers"):
        assert method in text


def test_kd_plus_fitnet_runs_and_the_adapter_is_not_saved(tmp_path, write_recipe):
    raw = distill_recipe(COMBINED)
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


@pytest.mark.parametrize("loss", ["kd", "dkd", "dist"])
def test_the_step_temperature_reaches_every_term_that_softens_logits(loss):
    from torch import nn

    from distillcli.losses import make_objective

    cfg = DistillConfig(loss=loss, temperature=2.0)
    soft = [t for _, t in make_objective(cfg.loss, nn.Linear(2, 3), cfg).terms if hasattr(t, "temperature")]
    assert [t.temperature for t in soft] == [2.0]
    own = DistillConfig(loss=[{"ce": {}}, {loss: {"temperature": 3.0, **({"alpha": 1.0} if loss == "kd" else {})}}])
    soft = [t for _, t in make_objective(own.loss, nn.Linear(2, 3), own).terms if hasattr(t, "temperature")]
    assert [t.temperature for t in soft] == [3.0]  # the term's own key wins


def test_a_step_key_no_term_reads_is_an_error_naming_the_term_s_own_key():
    validate_raw(distill_recipe("dkd"))  # the defaults are fine
    raw = distill_recipe("dkd")
    raw["steps"][1]["distill"]["alpha"] = 0.7
    assert "no term here uses it; set the term's own key instead (dkd.alpha)" in problems(raw)
    raw = distill_recipe([{"ce": {}}, {"fitnet": {"teacher_layer": "net.stages.1", "student_layer": "net.stages.1"}}])
    raw["steps"][1]["distill"]["temperature"] = 2
    assert "the step's temperature softens the logits" in problems(raw)


def test_a_loss_that_never_trains_the_classifier_is_refused():
    text = problems(distill_recipe([{"fitnet": {"teacher_layer": "net.stages.1", "student_layer": "net.stages.1"}}]))
    assert "no term trains the classifier" in text


@pytest.mark.parametrize(("loss", "temperature"), [("kd", 4.0), ("dkd", 4.0), ("dist", 1.0)])
def test_without_a_temperature_in_the_recipe_each_method_softens_by_its_own_default(loss, temperature):
    from torch import nn

    from distillcli.losses import make_objective

    cfg = DistillConfig(loss=loss)
    soft = [t for _, t in make_objective(cfg.loss, nn.Linear(2, 3), cfg).terms if hasattr(t, "temperature")]
    assert [t.temperature for t in soft] == [temperature]


def test_dist_defaults_are_the_setting_chosen_on_held_out_data():
    from distillcli.losses.options import DISTOptions

    options = DISTOptions()
    assert (options.beta, options.gamma, options.temperature, DISTOptions.default_temperature) == (1.0, 1.0, None, 1.0)


def test_dkd_defaults_are_the_setting_held_out_data_kept():
    from distillcli.losses.options import DKDOptions

    options = DKDOptions()
    assert (options.alpha, options.beta, options.temperature, options.warmup_epochs) == (1.0, 2.0, None, 20)


def test_kd_defaults_are_the_setting_held_out_data_chose():
    """T 4, alpha 0.5 led alpha 0.9 on held-out images on every seed at the 15-epoch CPU budget
    (docs/benchmarks.md); the compression steps' fine-tunes keep the 0.9 their figures were measured with."""
    from distillcli.losses.options import KDOptions, KDTermOptions, SelfDistillOptions
    from distillcli.recipe import validate_raw

    assert (KDOptions().alpha, KDOptions().temperature, KDTermOptions.default_temperature) == (0.5, None, 4.0)
    assert SelfDistillOptions().alpha == 0.9
    recipe = validate_raw({"data": {"name": "synthetic"}, "teacher": {"arch": "resnet8"},
                           "steps": [{"train": {"model": "teacher"}}, {"distill": {}}, {"prune": {"channel_ratio": 0.5}}]})
    assert (recipe.steps[1].distill.alpha, recipe.steps[2].prune.finetune.alpha) == (0.5, 0.9)
