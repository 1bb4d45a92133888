"""The CLI as CI and people use it: gates with exit 3, one JSON document on failure too,
--version / -h, init, --dry-run that writes nothing, refusals instead of silent overwrites."""

from __future__ import annotations

import json

import pytest

from tests.conftest import run_cli, tiny_recipe


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    import yaml

    tmp = tmp_path_factory.mktemp("ci")
    path = tmp / "r.yaml"
    path.write_text(yaml.safe_dump(tiny_recipe(report={"latency": False})))
    proc = run_cli("run", str(path), "--out", str(tmp / "run"), "--json", "--max-drop", "100")
    assert proc.returncode == 0, proc.stderr
    return tmp, path, json.loads(proc.stdout), proc.stderr


def test_run_json_and_plain_progress_on_stderr(small_run) -> None:
    _, _, summary, stderr = small_run
    assert summary["status"] == "ok" and summary["gate"]["passed"] is True
    assert "distill epoch 3/3" in stderr  # --json keeps the progress lines for CI logs
    assert "step 1: distill [student]" in stderr  # "[student]" is text, not swallowed as markup


def test_max_drop_gate_exits_3_with_one_json_document(small_run) -> None:
    tmp, path, _, _ = small_run
    proc = run_cli("run", str(path), "--out", str(tmp / "gated"), "--json", "--max-drop", "0", "--quiet",
                   "--set", "steps.1.epochs=1", "--set", "steps.1.lr=0.0001")
    assert proc.returncode == 3, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["status"] == "error" and doc["error"] == "GateFailed" and doc["exit_code"] == 3
    assert "top-1 dropped" in doc["message"] and doc["summary"]["gate"]["passed"] is False
    assert (tmp / "gated" / "metrics.json").is_file()  # the run's files are kept


def test_eval_min_top1_gate(small_run) -> None:
    tmp, _, summary, _ = small_run
    model = tmp / "run" / summary["steps"][-1]["model_file"]
    ok = run_cli("eval", str(model), "--no-latency", "--min-top1", "1", "--json")
    assert ok.returncode == 0 and json.loads(ok.stdout)["gate"]["passed"] is True
    bad = run_cli("eval", str(model), "--no-latency", "--min-top1", "100.0", "--json")
    assert bad.returncode == 3 and json.loads(bad.stdout)["error"] == "GateFailed"
    assert "below --min-top1 100" in bad.stderr


def test_failing_run_with_json_prints_the_error_as_json(write_recipe) -> None:
    raw = tiny_recipe()
    raw["steps"][1] = {"distill": {"temprature": 3}}
    proc = run_cli("run", str(write_recipe(raw)), "--json")
    assert proc.returncode == 2
    doc = json.loads(proc.stdout)
    assert doc["error"] == "RecipeError" and "did you mean 'temperature'" in doc["message"] and doc["hint"]


def test_version_help_init_and_dry_run(tmp_path) -> None:
    version = run_cli("--version")
    assert version.returncode == 0 and version.stdout.startswith("distill ")
    assert run_cli("-h").returncode == 0 and "Exit codes" in run_cli("-h").stdout
    path = tmp_path / "mine.yaml"
    assert run_cli("init", str(path)).returncode == 0 and "digits" in path.read_text()
    again = run_cli("init", str(path))
    assert again.returncode == 2 and "--force" in again.stderr
    plan = run_cli("run", str(path), "--dry-run", "--out", str(tmp_path / "never"), "--json")
    assert plan.returncode == 0, plan.stderr
    doc = json.loads(plan.stdout)
    assert [s["kind"] for s in doc["steps"]] == ["train", "distill", "evaluate"]
    assert doc["models"]["teacher"]["macs"] > doc["models"]["student"]["macs"] > 0
    assert not (tmp_path / "never").exists()
    quick = run_cli("run", str(path), "--out", str(tmp_path / "run"), "--quiet", "--set", "steps.0.epochs=1",
                    "--set", "steps.1.epochs=1", "--set", "data.train_subset=256", "--set", "data.val_subset=128",
                    "--set", "report.latency=false")
    assert quick.returncode == 0, quick.stderr


def test_empty_recipe_is_invalid(write_recipe) -> None:
    proc = run_cli("validate", str(write_recipe({"name": "empty"})))
    assert proc.returncode == 2 and "the recipe has no steps" in proc.stderr
