"""The Python API chains the commands on files, with option objects, and measures as the CLI does."""

from __future__ import annotations

import pytest

from distillcli import api
from tests.conftest import tiny_recipe

pytestmark = pytest.mark.usefixtures("one_thread")


def test_train_prune_quantize_and_distill_from_python(tmp_path) -> None:
    raw = tiny_recipe(steps=[{"train": {"model": "teacher", "epochs": 2, "lr": 0.05}}], report={"latency": False})
    trained = api.run(raw, out=tmp_path / "run")
    teacher = tmp_path / "run" / "models" / "teacher.pt"
    assert trained.record.steps[0].measures.top1 is not None and teacher.is_file()
    base = api.evaluate(teacher, latency=False)
    assert base.after.top1 == trained.record.steps[0].measures.top1  # the file reads back as the run measured it
    pruned = api.prune(teacher, api.PruneConfig(channel_ratio=0.5, latency=False), out=tmp_path / "p.pt",
                       latency=False)
    assert pruned.info.mac_reduction > 1.5 and pruned.output == tmp_path / "p.pt"
    quantized = api.quantize(pruned, {"method": "static", "compile": False}, out=tmp_path / "q.pt2", latency=False)
    assert quantized.model.precision == "int8" and quantized.output.suffix == ".pt2"
    distilled = api.distill(pruned, teacher, {"epochs": 1, "lr": 0.01}, data=raw["data"], out=tmp_path / "kd")
    assert distilled.record.steps[0].kind == "distill" and distilled.record.steps[0].measures.top1 is not None
