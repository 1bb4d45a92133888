"""One vocabulary for splits: `val` is the validation split data.val_split holds out of the training
data, `test` the test split, in run.log, the curves, metrics.json, report.md and report.html. Only
a validation split chooses a best epoch. Version-2 records (val_* on the test split) still load."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from distillcli.cli import app
from distillcli.engine.pipeline import Pipeline
from distillcli.progress import SilentProgress
from distillcli.recipe import load_recipe
from distillcli.record import SCHEMA_VERSION, EpochRecord, RunRecord
from distillcli.report import load_record
from tests.conftest import tiny_recipe

runner = CliRunner()


def test_without_a_validation_split_everything_says_test_and_no_epoch_is_best(run_dir: Path) -> None:
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["schema_version"] == SCHEMA_VERSION == 4
    assert metrics["data"]["measured_on"] == "test"
    assert (metrics["data"]["test_samples"], metrics["data"]["val_samples"]) == (64, 0)
    trained = [s for s in metrics["steps"] if s["curve"]]
    assert len(trained) == 2
    for step in trained:
        assert step["best"] is None
        assert all(r["test_top1"] is not None and r["val_top1"] is None and "split" not in r for r in step["curve"])
    log = (run_dir / "run.log").read_text()
    assert re.search(r"epoch 1/1 .* test_top1 [\d.]+", log) and "val_top1" not in log
    md = (run_dir / "report.md").read_text()
    assert "best epoch" not in md.lower() and "measured on the test split (64 images)" in md
    html = (run_dir / "report.html").read_text()
    assert "best epoch" not in html.lower() and "64 test samples" in html and "val samples" not in html


@pytest.fixture(scope="module")
def val_split_run(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("val-split")
    raw = tiny_recipe(teacher=None, steps=[{"train": {"epochs": 3, "lr": 0.05}}], report={"latency": False})
    raw["data"]["val_split"] = 0.25
    (folder / "recipe.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    Pipeline(load_recipe(folder / "recipe.yaml"), SilentProgress(), out=folder / "run").run()
    return folder / "run"


def test_a_validation_split_chooses_the_best_epoch_shown_with_its_test_top1(val_split_run: Path) -> None:
    record = load_record(val_split_run)
    assert (record.data.train_samples, record.data.val_samples, record.data.test_samples) == (192, 64, 64)
    step = record.steps[0]
    assert all(r.val_top1 is not None and r.test_top1 is not None for r in step.curve)
    top = max(step.curve, key=lambda r: r.val_top1 or 0.0)
    assert step.best is not None and (step.best.epoch, step.best.val_top1, step.best.test_top1) == \
        (top.epoch, top.val_top1, top.test_top1)
    shown = f"{top.epoch} (val {top.val_top1:.2f}, test {top.test_top1:.2f})"
    assert shown in (val_split_run / "report.md").read_text()
    html = (val_split_run / "report.html").read_text()
    assert shown in html and "best epoch" in html
    assert "192 train / 64 val (held out of the training data) / 64 test samples" in html
    log = (val_split_run / "run.log").read_text()
    assert len(re.findall(r"epoch \d/3 .* val_top1 [\d.]+  test_top1 [\d.]+", log)) == 3


def _v2_row(epoch: int, top1: float, split: str | None) -> dict:
    row = {"epoch": epoch, "lr": 0.1, "train_loss": 1.0, "train_top1": 50.0, "val_loss": 0.5, "val_top1": top1,
           "val_top5": 100.0}
    return row if split is None else {**row, "split": split}


def _v2_record(split: str | None, select_samples: int) -> dict:
    """A metrics.json as distillcli wrote it at schema version 2, by hand."""
    measures = {"top1": 75.0, "samples": 40, "params": 1000, "macs": 5000, "file_bytes": 8000,
                "latency_ms": {"8": 2.0}, "latency_iqr_ms": {"8": 0.1}}
    return {"schema": "distillcli.metrics", "schema_version": 2,
            "run": {"name": "old", "status": "ok", "seed": 0},
            "data": {"name": "synthetic", "num_classes": 2, "class_names": ["a", "b"], "input_shape": [3, 8, 8],
                     "train_samples": 100, "val_samples": 40, "select_samples": select_samples,
                     "measured_on": "test"},
            "baseline": {"source": "teacher", "label": "teacher", "measures": {**measures, "top1": 90.0}},
            "steps": [{"index": 0, "kind": "train", "target": "student", "measures": measures,
                       "curve": [_v2_row(1, 70.0, split), _v2_row(2, 75.0, split)],
                       "best": {"epoch": 2, "val_top1": 75.0}}]}


@pytest.mark.parametrize("split", ["test", None])  # v2's default split was the test split
def test_a_version_2_record_on_the_test_split_loads_as_test_and_loses_its_best_epoch(split, tmp_path) -> None:
    (tmp_path / "metrics.json").write_text(json.dumps(_v2_record(split, 0)))
    record = load_record(tmp_path)
    assert record.schema_version == 4 and record.data.measured_on == "test"
    assert (record.data.test_samples, record.data.val_samples) == (40, 0)
    step = record.steps[0]
    assert [(r.test_top1, r.test_loss, r.test_top5, r.val_top1) for r in step.curve] == \
        [(70.0, 0.5, 100.0, None), (75.0, 0.5, 100.0, None)]
    assert step.best is None  # it had been chosen on the test split
    assert RunRecord.model_validate(record.to_json()) == record  # written back as version 4, read the same


def test_a_version_2_record_on_the_held_out_split_keeps_val_and_its_best_epoch(tmp_path) -> None:
    raw = _v2_record("val_split", 20)
    raw["data"]["measured_on"] = "val_split"
    (tmp_path / "metrics.json").write_text(json.dumps(raw))
    record = load_record(tmp_path)
    assert (record.data.test_samples, record.data.val_samples, record.data.measured_on) == (40, 20, "val")
    assert [(r.val_top1, r.test_top1) for r in record.steps[0].curve] == [(70.0, None), (75.0, None)]
    best = record.steps[0].best
    assert best is not None and (best.epoch, best.val_top1, best.test_top1) == (2, 75.0, None)


def test_report_and_compare_work_on_a_version_2_run_directory(tmp_path) -> None:
    old = tmp_path / "old"
    old.mkdir()
    (old / "metrics.json").write_text(json.dumps(_v2_record("test", 0)))
    result = runner.invoke(app, ["report", str(old)])
    assert result.exit_code == 0, result.output
    md = (old / "report.md").read_text()
    assert "best epoch" not in md.lower() and "test split (40 images)" in md
    assert "40 test samples" in (old / "report.html").read_text()
    result = runner.invoke(app, ["compare", str(old), str(old), "--out", str(tmp_path / "cmp"), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["best"] is not None


def test_a_loop_state_from_a_version_2_checkpoint_reads_the_new_names() -> None:
    row = _v2_row(1, 70.0, "test")
    assert (EpochRecord(**row).test_top1, EpochRecord(**row).val_top1) == (70.0, None)
    held = EpochRecord(**_v2_row(1, 60.0, "val_split"))
    assert (held.val_top1, held.test_top1) == (60.0, None)
