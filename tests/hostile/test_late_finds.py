"""Hostile input found late: a non-text step kind, checkpoint paths that break the file check,
and a model write that fails part-way. Each ends in a DistillError (exit 2), not a bug."""

from __future__ import annotations

import resource
import signal
from pathlib import Path

import pytest

from distillcli.errors import DistillError
from distillcli.recipe import validate_raw
from tests.conftest import tiny_recipe


def test_step_kind_that_is_not_text() -> None:
    with pytest.raises(DistillError):
        validate_raw(tiny_recipe(steps=[{1: {}}]))


@pytest.mark.parametrize("checkpoint", ["~no_such_user_xyz/model.pt", "x" * 300])
def test_checkpoint_paths_that_break_the_file_check(checkpoint: str) -> None:
    with pytest.raises(DistillError):
        validate_raw(tiny_recipe(student={"arch": "cnn", "checkpoint": checkpoint}))


def test_model_write_that_fails(tmp_path: Path, tiny_file: Path) -> None:
    from distillcli.modelfile import load_model, save_model
    from distillcli.modelfile.header import file_header

    mf = load_model(tiny_file)
    header = file_header(mf.handle, class_names=mf.class_names, input_shape=mf.input_shape, data=mf.data)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    limits = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (1000, limits[1]))
    try:
        with pytest.raises(DistillError):
            save_model(tmp_path / "m.pt", mf.handle, header)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, limits)
        signal.signal(signal.SIGXFSZ, handler)
