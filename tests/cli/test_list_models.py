"""`distill list models [PATTERN] [--details]`: built-in, torchvision and timm names, sizes at CIFAR size."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from distillcli.cli import app
from distillcli.models import catalog
from distillcli.models.catalog import model_details
from distillcli.models.sources import model_names

runner = CliRunner()


def test_names_cover_torchvision_and_the_pattern_matches_the_full_name() -> None:
    names = model_names()
    assert {"resnet20", "cnn", "torchvision:resnet18", "torchvision:vit_b_16"} <= set(names)
    assert model_names("vgg*") == ["vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn"]
    assert model_names("torchvision:resnet1*") == ["torchvision:resnet101", "torchvision:resnet152",
                                                   "torchvision:resnet18"]
    assert "torchvision:vgg16_bn" in model_names("*vgg16*") and model_names("nothing*") == []


@pytest.mark.parametrize("pattern, expected", [("resnet20", {"resnet20": (269_722, 40_551_040)}),
                                               ("cnn", {"cnn": (94_762, 10_323_200)})])
def test_details_json_gives_parameters_and_macs(pattern, expected) -> None:
    result = runner.invoke(app, ["list", "models", pattern, "--details", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["num_classes"] == 10 and out["input_shape"] == [3, 32, 32]
    assert {row["name"]: (row["params"], row["macs"]) for row in out["models"]} == expected


def test_a_model_that_cannot_run_or_build_at_cifar_size_shows_a_dash(monkeypatch) -> None:
    vit = model_details("torchvision:vit_b_16")  # built on meta; its forward wants 224x224
    assert vit["params"] == 85_806_346 and vit["macs"] is None
    regnet = model_details("torchvision:regnet_x_400mf")  # computes widths with tensors: built on the CPU
    assert regnet["params"] and regnet["macs"]

    def broken(*args, **kwargs):
        raise RuntimeError("cannot build")

    monkeypatch.setattr(catalog, "build_backbone", broken)
    assert model_details("cnn") == {"name": "cnn", "params": None, "macs": None}
    result = runner.invoke(app, ["list", "models", "cnn", "--details"])
    row = next(line for line in result.output.splitlines() if "cnn" in line)
    assert result.exit_code == 0 and [cell.strip() for cell in row.split("│")[1:4]] == ["cnn", "-", "-"]


def test_details_is_for_models_only() -> None:
    result = runner.invoke(app, ["list", "steps", "--details"])
    assert result.exit_code == 2 and "--details is for models" in result.output


def test_a_word_matches_names_containing_it_and_nothing_found_exits_1() -> None:
    assert model_names("resnet20") == ["resnet20"]  # a name shows itself alone
    assert {"resnet20", "resnet56", "torchvision:resnet18", "timm:resnet18"} <= set(model_names("resnet"))
    result = runner.invoke(app, ["list", "models", "nosuchmodel"])
    assert result.exit_code == 1 and "no models match 'nosuchmodel'" in result.output


def test_options_show_types_and_defaults_from_the_registries() -> None:
    result = runner.invoke(app, ["list", "models", "resnet20", "--options", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["models"]["resnet20"]["width"]["default"] == "1.0"
    result = runner.invoke(app, ["list", "losses", "dkd", "--options"])
    assert "beta: float = 2.0" in result.output and "temperature: float | None = None" in result.output
    result = runner.invoke(app, ["list", "steps", "prune", "--options"])
    assert "method: 'channel' | 'unstructured' = 'channel'" in result.output
