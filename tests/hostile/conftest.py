"""A tiny real model file, written once per session, for the model-file tests to damage."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from distillcli.modelfile import file_header, save_model
from distillcli.models.build import build_model
from distillcli.models.handle import ArchSpec, ModelHandle


def save_tiny(path: Path, arch: str = "cnn", **kwargs) -> Path:
    """A 4-class model for 3x16x16 images, saved as a .pt model file."""
    spec = ArchSpec(name=arch, num_classes=4, in_channels=3, mean=[0.5] * 3, std=[0.25] * 3,
                    kwargs=kwargs or {"width": 4, "depth": 2})
    torch.manual_seed(0)
    handle = ModelHandle(build_model(spec), spec)
    header = file_header(handle, class_names=list("abcd"), input_shape=(3, 16, 16),
                         data={"name": "synthetic", "num_classes": 4, "image_size": 16, "train_size": 64,
                               "val_size": 32})
    return save_model(path, handle, header)


@pytest.fixture(scope="session")
def tiny_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny(tmp_path_factory.mktemp("tiny") / "model.pt")


@pytest.fixture(scope="session")
def tiny_payload(tiny_file: Path) -> dict:
    return torch.load(tiny_file, weights_only=True)
