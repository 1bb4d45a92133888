"""Hostile input that still fails with "this is a bug", in code outside this change's files.
Each is xfail(strict): when the fix lands the test passes, and strict makes that a failure
as a reminder to remove the mark. The fix for each is in its reason."""

from __future__ import annotations

import resource
import signal
from pathlib import Path

import pytest

from distillcli.errors import DistillError
from distillcli.recipe import validate_raw
from tests.conftest import tiny_recipe


@pytest.mark.xfail(strict=True, raises=TypeError,
                   reason="recipe._problem passes a non-text step kind to closest(); use closest(str(name), ...)")
def test_step_kind_that_is_not_text() -> None:
    with pytest.raises(DistillError):
        validate_raw(tiny_recipe(steps=[{1: {}}]))


@pytest.mark.xfail(strict=True, raises=(OSError, RuntimeError),
                   reason="semantic_problems: Path(checkpoint).expanduser().is_file() raises for '~nouser/x' "
                          "(RuntimeError) and over-long names (OSError); catch both and report the checkpoint")
@pytest.mark.parametrize("checkpoint", ["~no_such_user_xyz/model.pt", "x" * 300])
def test_checkpoint_paths_that_break_the_file_check(checkpoint: str) -> None:
    with pytest.raises(DistillError):
        validate_raw(tiny_recipe(student={"arch": "cnn", "checkpoint": checkpoint}))


@pytest.mark.xfail(strict=True, raises=RuntimeError,
                   reason="modelfile.eager.save_eager: torch.save reports a failed write as a RuntimeError, not an "
                          "OSError; serialise to io.BytesIO first and write the bytes, as save_program does")
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
