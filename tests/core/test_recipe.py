"""Recipe validation: every problem at once, with key paths, values and suggestions."""

from __future__ import annotations

from pathlib import Path

import pytest

from distillcli.errors import RecipeError
from distillcli.recipe import apply_override, load_recipe, recipe_schema, validate_raw
from tests.conftest import ROOT, tiny_recipe


def problems(raw: dict) -> list[str]:
    with pytest.raises(RecipeError) as info:
        validate_raw(raw)
    return info.value.problems


def test_tiny_recipe_is_valid():
    recipe = validate_raw(tiny_recipe())
    assert [k for k, _ in recipe.step_list()] == ["train", "distill", "evaluate"]
    kind, cfg = recipe.step_list()[1]
    assert (cfg.temperature, cfg.alpha, cfg.model) == (None, 0.5, "student")  # None: each method's own T


def test_unknown_step_key_suggests_the_closest():
    raw = tiny_recipe()
    raw["steps"][1] = {"distill": {"temprature": 3}}
    assert problems(raw) == ["steps[1].distill.temprature: unknown key; did you mean 'temperature'?"]


def test_unknown_keys_everywhere_are_reported_together():
    raw = tiny_recipe(sead=1)
    raw["data"]["batchsize"] = 4
    raw["teacher"]["strip_prefx"] = "module."
    found = problems(raw)
    assert "sead: unknown key; did you mean 'seed'?" in found
    assert "data.batchsize: unknown key; did you mean 'batch_size'?" in found
    assert "teacher.strip_prefx: unknown key; did you mean 'strip_prefix'?" in found
    assert len(found) == 3


def test_wrong_type_names_path_and_value():
    raw = tiny_recipe()
    raw["steps"][0]["train"]["epochs"] = "ten"
    (msg,) = problems(raw)
    assert msg.startswith("steps[0].train.epochs:") and "'ten'" in msg


def test_bad_enum_and_range():
    raw = tiny_recipe(device="gpu")
    raw["steps"][1]["distill"]["alpha"] = 1.5
    raw["steps"][0]["train"]["optimizer"] = "adam"
    found = problems(raw)
    assert any(p.startswith("device:") and "cuda" in p for p in found)
    assert any(p.startswith("steps[1].distill.alpha:") and "1.5" in p for p in found)
    assert any(p.startswith("steps[0].train.optimizer:") and "'sgd'" in p for p in found)


def test_unknown_step_kind_suggests():
    raw = tiny_recipe()
    raw["steps"].append({"distil": {}})
    assert problems(raw) == ["steps[3]: unknown step 'distil'; did you mean 'distill'?"]


def test_unknown_arch_and_arch_option():
    raw = tiny_recipe()
    raw["student"] = {"arch": "resnet2O"}
    raw["teacher"]["args"] = {"widht": 2}
    found = problems(raw)
    assert any("unknown model 'resnet2O'" in p and "resnet20" in p for p in found)
    assert any("no option 'widht'" in p and "'width'" in p for p in found)


def test_missing_checkpoint_file():
    raw = tiny_recipe()
    raw["teacher"]["checkpoint"] = "nowhere/teacher.th"
    assert problems(raw) == ["teacher.checkpoint: file not found: nowhere/teacher.th"]


def test_distill_needs_a_teacher():
    raw = tiny_recipe(teacher=None)
    raw["steps"] = [{"distill": {}}]
    assert problems(raw) == ["steps[0].distill: needs a teacher section"]


def test_missing_recipe_file(tmp_path):
    with pytest.raises(RecipeError, match="file not found"):
        load_recipe(tmp_path / "nope.yaml")


def test_invalid_yaml_names_the_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\nsteps: [\n  - train: {epochs: 1\n")
    with pytest.raises(RecipeError, match="line"):
        load_recipe(path)


def test_set_overrides_reach_step_options_and_parse_types(write_recipe):
    path = write_recipe(tiny_recipe())
    recipe = load_recipe(path, ["steps.0.epochs=7", "steps.1.distill.temperature=2.5", "data.batch_size=16",
                                "device=cpu", "report.formats=[json]"])
    steps = recipe.step_list()
    assert steps[0][1].epochs == 7 and steps[1][1].temperature == 2.5
    assert recipe.data.batch_size == 16 and recipe.report.formats == ["json"]


def test_set_with_a_bad_key_is_a_recipe_error(write_recipe):
    path = write_recipe(tiny_recipe())
    with pytest.raises(RecipeError, match="steps\\[0\\].train.epoch: unknown key; did you mean 'epochs'"):
        load_recipe(path, ["steps.0.epoch=3"])
    with pytest.raises(RecipeError, match="out of range"):
        load_recipe(path, ["steps.9.epochs=3"])
    with pytest.raises(RecipeError, match="KEY=VALUE"):
        apply_override({}, "seed")


@pytest.mark.parametrize("path", sorted((ROOT / "recipes").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_recipe_validates(path: Path, tmp_path):
    overrides = []
    # Recipes may point at real data/weights beside the checkout; stand in a file when absent.
    import yaml

    raw = yaml.safe_load(path.read_text())
    for role in ("teacher", "student"):
        ckpt = (raw.get(role) or {}).get("checkpoint")
        if ckpt and not (path.parent / ckpt).exists():  # paths in a recipe are relative to its file
            stand_in = tmp_path / f"{role}.th"
            stand_in.write_bytes(b"")
            overrides.append(f"{role}.checkpoint={stand_in}")
    data = raw.get("data") or {}
    if data.get("root") and not data.get("download") and not (path.parent / data["root"]).is_dir():
        overrides.append(f"data.root={tmp_path}")
    recipe = load_recipe(path, overrides)
    assert recipe.step_list()


def test_relative_paths_in_a_recipe_are_relative_to_its_file(tmp_path, monkeypatch):
    import yaml

    (tmp_path / "recipes").mkdir()
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / "t.pt").write_bytes(b"")
    raw = {"data": {"name": "cifar10", "root": "../data", "download": True},
           "teacher": {"arch": "resnet20", "checkpoint": "../weights/t.pt"}, "steps": [{"evaluate": {}}]}
    path = tmp_path / "recipes" / "r.yaml"
    path.write_text(yaml.safe_dump(raw))
    monkeypatch.chdir(tmp_path / "weights")  # anywhere else
    recipe = load_recipe(path, ["student.checkpoint=t.pt"])  # --set paths stay relative to where distill runs
    assert recipe.data.root == str(tmp_path / "data")
    assert recipe.teacher is not None and recipe.teacher.checkpoint == str(tmp_path / "weights" / "t.pt")
    assert recipe.student.checkpoint == "t.pt"


def test_schema_lists_steps_and_their_options():
    schema = recipe_schema()
    text = str(schema)
    for key in ("temperature", "alpha", "strip_prefix", "batch_size", "latency_batches"):
        assert key in text
    assert "steps" in schema["properties"]
