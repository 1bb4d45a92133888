"""`distill run / eval / validate / schema` end to end, in fresh processes, as users run them."""

from __future__ import annotations

import json

import pytest

from tests.conftest import run_cli, run_json, tiny_recipe


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("run")
    import yaml

    path = tmp / "tiny.yaml"
    path.write_text(yaml.safe_dump(tiny_recipe()))
    summary = run_json("run", str(path), "--out", str(tmp / "out"))
    return tmp / "out", summary


def test_run_json_summary_has_every_metric(finished_run):
    run_dir, summary = finished_run
    assert summary["status"] == "ok"
    assert [(s["kind"], s["target"]) for s in summary["steps"]] == [
        ("train", "teacher"), ("distill", "student"), ("evaluate", "student")]
    for s in summary["steps"]:
        assert 0 <= s["top1"] <= 100 and s["top1"] <= s["top5"] <= 100
        assert s["loss"] > 0 and s["samples"] == 64
        assert s["params"] > 0 and s["macs"] > 0 and s["file_bytes"] > 0
        assert set(s["latency_ms"]) == {"1", "8"} and all(v > 0 for v in s["latency_ms"].values())
        assert s["threads"] >= 1 and (run_dir / s["model_file"]).is_file()
    teacher, student = summary["steps"][0], summary["steps"][1]
    assert student["params"] < teacher["params"] and student["macs"] < teacher["macs"]
    assert student["top1"] > 40  # 4 classes: chance is 25 %


def test_run_directory_holds_recipe_metrics_report_log_models(finished_run):
    run_dir, _ = finished_run
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["schema"] == "distillcli.metrics" and metrics["run"]["status"] == "ok"
    assert metrics["run"]["versions"]["torch"] and metrics["run"]["seed"] == 0
    distill = metrics["steps"][1]
    assert [row["epoch"] for row in distill["curve"]] == [1, 2, 3]
    assert all(row["images_per_s"] > 0 and row["test_top1"] is not None for row in distill["curve"])
    assert distill["best"] is None  # no data.val_split: the test split chooses no epoch
    assert len(distill["measures"]["per_class_top1"]) == 4
    report = (run_dir / "report.md").read_text()
    assert report.count("\n| ") >= 4 and "Δ top-1" in report
    assert "distill epoch 3/3" in (run_dir / "run.log").read_text()
    assert (run_dir / "recipe.yaml").read_text().startswith("name: tiny")
    assert (run_dir / "models" / "student.pt").is_file() and (run_dir / "models" / "teacher.pt").is_file()
    assert not list(run_dir.rglob("*.tmp"))


def test_eval_in_a_fresh_process_reproduces_the_run(finished_run):
    run_dir, summary = finished_run
    result = run_json("eval", str(run_dir / "models" / "student.pt"), "--no-latency")
    assert result["data"] == "synthetic" and result["arch"] == "cnn"
    assert result["measures"]["top1"] == pytest.approx(summary["steps"][-1]["top1"])
    assert result["measures"]["params"] == summary["steps"][-1]["params"]


def test_same_seed_same_metrics(tmp_path, write_recipe):
    path = write_recipe(tiny_recipe(steps=[{"train": {"epochs": 1, "lr": 0.05}}]))
    a = run_json("run", str(path), "--out", str(tmp_path / "a"), "--set", "report.latency=false")
    b = run_json("run", str(path), "--out", str(tmp_path / "b"), "--set", "report.latency=false")
    assert a["steps"][0]["loss"] == b["steps"][0]["loss"] and a["steps"][0]["top1"] == b["steps"][0]["top1"]


def test_bad_recipe_exits_2_with_every_problem_and_no_traceback(write_recipe):
    raw = tiny_recipe()
    raw["steps"][1] = {"distill": {"temprature": 3}}
    raw["seed"] = "zero"
    proc = run_cli("run", str(write_recipe(raw)))
    assert proc.returncode == 2
    assert "steps[1].distill.temprature: unknown key; did you mean 'temperature'?" in proc.stderr
    assert "seed:" in proc.stderr and "Traceback" not in proc.stderr


def test_validate_and_set(write_recipe):
    path = write_recipe(tiny_recipe())
    ok = run_json("validate", str(path), "--set", "steps.0.epochs=3")
    assert ok == {"valid": True, "name": "tiny", "steps": ["train", "distill", "evaluate"]}
    bad = run_cli("validate", str(path), "--set", "steps.0.epoch=3")
    assert bad.returncode == 2 and "did you mean 'epochs'" in bad.stderr


def test_schema_is_json():
    proc = run_cli("schema")
    assert proc.returncode == 0
    assert "steps" in json.loads(proc.stdout)["properties"]


def test_missing_files_exit_2():
    for args in (["run", "nope.yaml"], ["eval", "nope.pt"], ["validate", "nope.yaml"]):
        proc = run_cli(*args)
        assert proc.returncode == 2 and "not found" in proc.stderr and "Traceback" not in proc.stderr


def test_unavailable_device_exits_2(write_recipe):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    proc = run_cli("run", str(write_recipe(tiny_recipe())), "--device", "cuda")
    assert proc.returncode == 2 and "--device cpu" in proc.stderr


def test_diverging_training_exits_1_and_keeps_metrics(tmp_path, write_recipe):
    recipe = tiny_recipe(steps=[{"train": {"epochs": 1, "lr": 1.0e12, "momentum": 0.0}}])
    proc = run_cli("run", str(write_recipe(recipe)), "--out", str(tmp_path / "out"))
    assert proc.returncode == 1, proc.stderr
    assert "lower the learning rate" in proc.stderr and "Traceback" not in proc.stderr
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["run"]["status"] == "failed" and "loss became" in metrics["run"]["error"]
