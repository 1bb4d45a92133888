"""Model sources: a user's own code runs only with consent (every time), torchvision and timm models
build by name, and a foreign checkpoint becomes a model file that reproduces the original exactly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from distillcli.errors import OptionError, UnknownNameError
from distillcli.models.backbones import build_backbone
from distillcli.models.sources import ConsentError, check_arch_args, trusting_code
from tests.conftest import run_cli, tiny_recipe

USER_CODE = '''
from pathlib import Path
from torch import nn

Path(__file__).with_name("imported.marker").write_text("the file was imported")


class TinyNet(nn.Module):
    def __init__(self, num_classes, width=4):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
                                  nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(width, num_classes)

    def forward(self, x):
        return self.head(self.body(x))
'''


def _user_recipe(tmp_path: Path) -> tuple[Path, Path]:
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "mynet.py").write_text(USER_CODE)
    raw = tiny_recipe(steps=[{"train": {"epochs": 1, "lr": 0.05}}], report={"latency": False})
    raw.pop("teacher")
    raw["student"] = {"arch": "py:code/mynet.py:TinyNet", "args": {"width": 6}}
    (tmp_path / "mine.yaml").write_text(yaml.safe_dump(raw))
    return tmp_path / "mine.yaml", tmp_path / "code" / "imported.marker"


def test_user_code_runs_only_with_consent_given_every_time(tmp_path: Path) -> None:
    recipe, marker = _user_recipe(tmp_path)
    refused = run_cli("run", str(recipe), "--out", str(tmp_path / "run"))
    assert refused.returncode == 2 and "--trust-code" in refused.stderr and "Traceback" not in refused.stderr
    assert not marker.exists()  # never imported without consent
    ran = run_cli("run", str(recipe), "--out", str(tmp_path / "run"), "--trust-code", "--quiet")
    assert ran.returncode == 0, ran.stderr
    assert marker.exists()
    model = tmp_path / "run" / "models" / "student.pt"
    assert "trust_code" not in (tmp_path / "run" / "recipe.yaml").read_text()  # consent is not saved
    marker.unlink()
    again = run_cli("eval", str(model))  # a file made from user code: consent again
    assert again.returncode == 2 and "--trust-code" in again.stderr and not marker.exists()
    trusted = run_cli("eval", str(model), "--trust-code", "--json")
    assert trusted.returncode == 0, trusted.stderr
    assert json.loads(trusted.stdout)["measures"]["top1"] is not None and marker.exists()


def test_user_code_in_process_needs_the_consent_block(tmp_path: Path) -> None:
    (tmp_path / "mynet.py").write_text(USER_CODE)
    arch = f"py:{tmp_path / 'mynet.py'}:TinyNet"
    with pytest.raises(ConsentError):
        build_backbone(arch, 3)
    assert not (tmp_path / "imported.marker").exists()
    with trusting_code():
        model = build_backbone(arch, 3, width=5)
    assert model(torch.rand(2, 3, 8, 8)).shape == (2, 3) and model.head.in_features == 5


def test_torchvision_and_timm_names_are_checked_without_building() -> None:
    check_arch_args("timm:mobilenetv3_small_100", {"pretrained": False})
    check_arch_args("torchvision:resnet18", {"weights": "DEFAULT"})
    with pytest.raises(UnknownNameError, match="did you mean 'timm:resnet18'"):
        check_arch_args("timm:resnet1", {})
    with pytest.raises(OptionError, match="has no option 'widht'"):
        check_arch_args("torchvision:resnet18", {"widht": 2})
    check_arch_args("timm:deit_tiny_patch16_224", {"img_size": 64})  # timm's own keys go to create_model
    with pytest.raises(UnknownNameError, match="unknown model source 'tv'"):
        check_arch_args("tv:resnet18", {})


@pytest.mark.parametrize("arch", ["timm:resnet18", "timm:mobilenetv3_small_100", "timm:deit_tiny_patch16_224"])
def test_timm_models_build_for_the_data(arch: str) -> None:
    model = build_backbone(arch, 7, 3, **({"img_size": 64} if "deit" in arch else {}))
    assert model.eval()(torch.rand(1, 3, 64, 64)).shape == (1, 7)


def test_a_torchvision_checkpoint_imports_to_a_file_that_reproduces_it_exactly(tmp_path: Path) -> None:
    import torchvision

    torch.manual_seed(0)
    original = torchvision.models.resnet18(num_classes=1000).eval()
    torch.save({"state_dict": {f"module.{k}": v for k, v in original.state_dict().items()}}, tmp_path / "r18.pth")
    images = torch.rand(2, 3, 64, 64)
    torch.save(images, tmp_path / "images.pt")
    proc = run_cli("import", str(tmp_path / "r18.pth"), "--arch", "torchvision:resnet18", "--strip-prefix", "module.",
                   "--out", str(tmp_path / "r18.pt"), "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["num_classes"] == 1000  # read from the checkpoint's classifier
    check = ("import sys, torch\nfrom distillcli.modelfile import load_model\n"
             "m = load_model(sys.argv[1]).handle.module\nprint((m(torch.load(sys.argv[2]))).tolist())")
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", check, str(tmp_path / "r18.pt"), str(tmp_path / "images.pt")],
                         capture_output=True, text=True, check=True)
    mean, std = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        expected = original((images - mean) / std)
    assert (torch.tensor(json.loads(out.stdout)) - expected).abs().max() < 1e-5


def test_import_refuses_unused_keys_and_pickled_modules_without_consent(tmp_path: Path) -> None:
    import torchvision

    model = torchvision.models.resnet18(num_classes=10)
    state = {**model.state_dict(), "extra.weight": torch.zeros(1)}
    torch.save(state, tmp_path / "extra.pth")
    proc = run_cli("import", str(tmp_path / "extra.pth"), "--arch", "torchvision:resnet18", "--out",
                   str(tmp_path / "x.pt"))
    assert proc.returncode == 2 and "unexpected keys: extra.weight" in proc.stderr and not (tmp_path / "x.pt").exists()
    torch.save(model, tmp_path / "whole.pth")
    proc = run_cli("import", str(tmp_path / "whole.pth"), "--arch", "torchvision:resnet18", "--out",
                   str(tmp_path / "w.pt"))
    assert proc.returncode == 2 and "--trust-code" in proc.stderr
    proc = run_cli("import", str(tmp_path / "whole.pth"), "--arch", "torchvision:resnet18", "--out",
                   str(tmp_path / "w.pt"), "--trust-code")
    assert proc.returncode == 0, proc.stderr


def test_a_loaded_teacher_that_no_step_changes_still_gets_its_model_file(tmp_path: Path) -> None:
    torch.manual_seed(0)
    torch.save(build_backbone("cnn", 4, 3, width=8).state_dict(), tmp_path / "foreign.pth")
    raw = tiny_recipe(steps=[{"evaluate": {"model": "teacher"}}], report={"latency": False})
    raw["teacher"] = {"arch": "cnn", "args": {"width": 8}, "checkpoint": str(tmp_path / "foreign.pth")}
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(raw))
    ran = run_cli("run", str(tmp_path / "r.yaml"), "--out", str(tmp_path / "run"), "--json")
    assert ran.returncode == 0, ran.stderr
    top1 = json.loads(ran.stdout)["steps"][0]["top1"]
    evaluated = run_cli("eval", str(tmp_path / "run" / "models" / "teacher.pt"), "--json")
    assert evaluated.returncode == 0, evaluated.stderr
    assert json.loads(evaluated.stdout)["measures"]["top1"] == top1
