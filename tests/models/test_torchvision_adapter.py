"""torchvision classifiers: head resizing, channel adaptation, errors (no downloads)."""

from __future__ import annotations

import urllib.error
from pathlib import Path

import pytest
import torch
from torch import nn

from distillcli.errors import ModelFileError, UnknownNameError
from distillcli.models.torchvision_adapter import build_torchvision
from distillcli.models.backbones import build_backbone


def test_resnet18_head_resized() -> None:
    model = build_backbone("torchvision:resnet18", 7, pretrained=False)
    assert isinstance(model.fc, nn.Linear) and model.fc.out_features == 7
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 7)


def test_first_conv_adapted_to_grey_images() -> None:
    model = build_torchvision("resnet18", 4, in_channels=1)
    assert model.conv1.in_channels == 1 and model.conv1.weight.shape[1] == 1
    assert model(torch.randn(2, 1, 32, 32)).shape == (2, 4)


def test_head_without_linear_is_resized() -> None:
    model = build_torchvision("squeezenet1_1", 6)
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 6)


def test_unknown_torchvision_model_suggests_closest() -> None:
    with pytest.raises(UnknownNameError) as err:
        build_backbone("torchvision:resnt18", 10)
    assert "torchvision:resnet18" in str(err.value.hint)


def test_failed_download_raises_model_file_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def offline(*args: object, **kwargs: object) -> None:
        raise urllib.error.URLError("no network")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(ModelFileError) as err:
        build_torchvision("resnet18", 10, pretrained=True)
    assert "could not be downloaded" in err.value.message
    assert "pretrained: false" in str(err.value.hint) and "TORCH_HOME" in str(err.value.hint)
