"""`distill init --template NAME`: each starter recipe is commented, names the files it needs, and
validates (without torch) once they exist; digits is the default and needs none."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from typer.testing import CliRunner

from distillcli.cli import app
from distillcli.cli.templates import TEMPLATES
from tests.conftest import run_in_one_process

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def _make_placeholders(recipe: Path) -> None:
    """The data folder and the teacher checkpoint the recipe names, as small as validate accepts."""
    raw = yaml.safe_load(recipe.read_text())
    root = recipe.parent / raw["data"].get("root", "data")
    if raw["data"]["name"] == "imagefolder":
        for split in ("train", "val"):
            (root / split / "cat").mkdir(parents=True, exist_ok=True)
            (root / split / "cat" / "1.png").touch()
    else:
        root.mkdir(parents=True, exist_ok=True)
    checkpoint = (raw.get("teacher") or {}).get("checkpoint")
    if checkpoint:
        (recipe.parent / checkpoint).parent.mkdir(parents=True, exist_ok=True)
        torch.save({"w": torch.zeros(1)}, recipe.parent / checkpoint)


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_each_template_is_commented_and_validates_once_its_files_exist(name: str, tmp_path: Path) -> None:
    recipe = tmp_path / f"my {name}.yaml"
    written = invoke("init", recipe, "--template", name)
    assert written.exit_code == 0, written.output
    text = recipe.read_text()
    raw = yaml.safe_load(text)
    assert raw["name"] == f"my-{name}" and raw["steps"]
    assert sum(line.lstrip().startswith("#") for line in text.splitlines()) >= 3 and "distill validate" in text
    if name == "digits":
        assert invoke("validate", recipe).exit_code == 0  # nothing to fetch: it runs offline
        return
    assert "CPU budgets (12-20 epochs)" in text
    assert all(12 <= s[kind]["epochs"] <= 20 for s in raw["steps"] for kind in s if "epochs" in s[kind])
    missing = invoke("validate", recipe)
    assert missing.exit_code == 2 and raw["data"]["root"].rstrip("/") in missing.stderr  # says what to put where
    _make_placeholders(recipe)
    valid = invoke("validate", recipe)
    assert valid.exit_code == 0, valid.output


def _commented_steps(text: str) -> list[dict]:
    """The steps a template offers in comments (`  # - prune: {...}`, continued on `  #    ...` lines)."""
    snippets: list[str] = []
    for line in text.splitlines():
        if line.startswith("  # - "):
            snippets.append(line[4:])
        elif snippets and line.startswith("  #   ") and not snippets[-1].rstrip().endswith("}"):
            snippets[-1] += "\n" + line[4:]
    return [yaml.safe_load(snippet)[0] for snippet in snippets]


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_the_steps_a_template_offers_in_comments_validate(name: str, tmp_path: Path) -> None:
    recipe = tmp_path / "r.yaml"
    assert invoke("init", recipe, "--template", name).exit_code == 0
    offered = _commented_steps(recipe.read_text())
    if name in ("digits", "imagefolder"):  # prune + quantize; KD + attention transfer for little data
        assert offered
    raw = yaml.safe_load(recipe.read_text())
    raw["steps"][-1:-1] = offered
    recipe.write_text(yaml.safe_dump(raw))
    _make_placeholders(recipe)
    valid = invoke("validate", recipe)
    assert valid.exit_code == 0, valid.output
    assert f"{len(raw['steps'])} steps" in valid.output


@pytest.mark.parametrize("name, teacher", [
    ("checkpoint", {"arch": "resnet56", "strip_prefix": "module."}),
    ("torchvision", {"arch": "torchvision:resnet18", "args": {"weights": "DEFAULT"}}),
    ("timm", {"arch": "timm:resnet18", "args": {"pretrained": True}}),
])
def test_templates_name_the_teacher_they_start_from(name: str, teacher: dict, tmp_path: Path) -> None:
    recipe = tmp_path / "r.yaml"
    assert invoke("init", recipe, "--template", name).exit_code == 0
    raw = yaml.safe_load(recipe.read_text())
    assert teacher.items() <= raw["teacher"].items()
    student = {"torchvision": "torchvision:mobilenet_v3_small", "timm": "timm:mobilenetv3_small_100"}
    assert raw["student"]["arch"] == student.get(name, "resnet20")


def test_digits_is_the_default_and_an_unknown_template_is_refused(tmp_path: Path) -> None:
    assert invoke("init", tmp_path / "a.yaml").exit_code == 0
    default = (tmp_path / "a.yaml").read_text()
    assert invoke("init", tmp_path / "a.yaml", "--template", "digits", "--force").exit_code == 0
    assert (tmp_path / "a.yaml").read_text() == default and "name: digits" in default
    wrong = invoke("init", tmp_path / "c.yaml", "--template", "cifr")
    assert wrong.exit_code == 2 and "did you mean 'cifar'?" in wrong.stderr and not (tmp_path / "c.yaml").exists()


def test_init_and_validate_of_every_template_do_not_import_torch(tmp_path: Path) -> None:
    commands = []
    for name in TEMPLATES:
        assert invoke("init", tmp_path / f"{name}.yaml", "--template", name).exit_code == 0
        _make_placeholders(tmp_path / f"{name}.yaml")
        commands += [["init", str(tmp_path / f"again-{name}.yaml"), "--template", name],
                     ["validate", str(tmp_path / f"{name}.yaml")]]
    results = run_in_one_process(commands, tmp_path)
    assert [r for r in results if r["code"] != 0 or r["torch"]] == []
