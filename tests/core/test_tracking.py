"""report.tensorboard: event files with per-epoch scalars of every loop and a summary per step."""

from __future__ import annotations

import sys

import pytest

from distillcli.errors import OptionError
from distillcli.engine.pipeline import Pipeline
from distillcli.progress import SilentProgress
from distillcli.recipe import load_recipe
from tests.conftest import tiny_recipe

pytestmark = pytest.mark.usefixtures("one_thread")
EPOCH_TAGS = ("train/loss", "train/top1", "test/loss", "test/top1", "lr", "images_per_s")


def test_tensorboard_event_files_hold_every_epoch_and_step(tmp_path, write_recipe) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    raw = tiny_recipe(report={"tensorboard": True, "latency": False})
    Pipeline(load_recipe(write_recipe(raw)), SilentProgress(), out=tmp_path / "run").run()
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    for prefix, steps in (("step0-train", [1, 2]), ("step1-distill", [3, 4, 5])):  # epochs counted across the run
        for tag in EPOCH_TAGS:
            assert [e.step for e in events.Scalars(f"{prefix}/{tag}")] == steps, (prefix, tag)
    assert not any(tag.startswith("step2-") for tag in scalars)  # evaluate trains nothing
    assert not any("/val/" in tag for tag in scalars)  # no data.val_split: no validation split
    assert [e.step for e in events.Scalars("steps/top1")] == [0, 1, 2]
    assert {"steps/params", "steps/macs"} <= scalars and not any("latency" in t for t in scalars)
    table = events.Tensors("steps/text_summary")[-1].tensor_proto.string_val[0].decode()
    assert table.startswith("| # | step") and table.count("\n") == 4  # head, rule, three steps


def test_off_by_default_and_a_missing_package_is_one_message(tmp_path, write_recipe, monkeypatch) -> None:
    raw = tiny_recipe(teacher=None, steps=[{"evaluate": {}}], report={"latency": False})
    Pipeline(load_recipe(write_recipe(raw)), SilentProgress(), out=tmp_path / "off").run()
    assert not (tmp_path / "off" / "tensorboard").exists()
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # as if tensorboard were not installed
    raw["report"]["tensorboard"] = True
    with pytest.raises(OptionError, match="tensorboard") as info:
        Pipeline(load_recipe(write_recipe(raw)), SilentProgress(), out=tmp_path / "on").run()
    assert "pip install tensorboard" in (info.value.hint or "") and not (tmp_path / "on").exists()
