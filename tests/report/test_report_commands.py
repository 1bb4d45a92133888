"""`distill report` rebuilds the run's reports from metrics.json; `distill compare` picks the best
run within --max-drop."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from distillcli.cli import app
from distillcli.record import RunRecord
from distillcli.report.compare import compare_runs, render_md
from tests.conftest import run_cli

runner = CliRunner()


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def test_report_command_rebuilds_the_same_files(run_dir, tmp_path) -> None:
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    before = {name: (copy / name).read_text() for name in ("report.md", "report.html")}
    for name in before:
        (copy / name).unlink()
    proc = run_cli("report", str(copy))  # a fresh process, from metrics.json alone
    assert proc.returncode == 0, proc.stderr
    assert {name: (copy / name).read_text() for name in before} == before


@pytest.mark.parametrize("content, message", [
    (None, "holds no metrics.json"),
    ("{not json", "is not a valid run record: not JSON"),
    ('{"schema": "distillcli.metrics", "schema_version": 2}', "is not a valid run record: run: Field required"),
])
def test_report_command_on_a_bad_run_dir_exits_2(tmp_path, content, message) -> None:
    if content is not None:
        (tmp_path / "metrics.json").write_text(content)
    result = invoke("report", tmp_path)
    assert result.exit_code == 2 and message in result.stderr and "->" in result.stderr
    assert "Traceback" not in result.output


def _fake_run(source: Path, folder: Path, top1: float, latency_ms: dict[str, float], size: int, macs: int) -> Path:
    """A copy of a real run whose baseline is 90 % and whose final student has the given measures."""
    record = RunRecord.model_validate(json.loads((source / "metrics.json").read_text()))
    assert record.baseline is not None
    record.baseline.measures.top1 = 90.0
    final = record.final_step()
    assert final is not None
    final.measures.top1, final.measures.latency_ms = top1, latency_ms
    final.measures.file_bytes, final.measures.macs = size, macs
    folder.mkdir()
    (folder / "metrics.json").write_text(json.dumps(record.to_json()))
    return folder


@pytest.fixture
def three_runs(run_dir, tmp_path) -> list[Path]:
    return [_fake_run(run_dir, tmp_path / "x", 89.5, {"1": 1.0, "8": 10.0}, 1_000_000, 5_000_000),
            _fake_run(run_dir, tmp_path / "y", 87.0, {"1": 0.5, "8": 5.0}, 500_000, 2_000_000),
            _fake_run(run_dir, tmp_path / "z", 89.8, {"1": 2.0, "8": 20.0}, 2_000_000, 1_000_000)]


@pytest.mark.parametrize("max_drop, objective, best", [
    (1.0, "latency", "x"), (5.0, "latency", "y"), (5.0, "size", "y"), (1.0, "macs", "z"), (0.1, "latency", None)])
def test_compare_picks_the_cheapest_run_within_the_drop(three_runs, max_drop, objective, best) -> None:
    result = compare_runs(three_runs, max_drop, objective, baseline="teacher")
    assert result.reference == 90.0 and result.batch == "8"
    assert (result.best.label if result.best else None) == best
    assert ("best: " + best if best else "no run qualifies") in render_md(result)


def test_compare_when_none_qualifies_exits_0_with_best_null(three_runs, tmp_path) -> None:
    result = invoke("compare", *three_runs, "--max-drop", 0.1, "--baseline", "teacher", "--out", tmp_path / "cmp",
                    "--json")
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["best"] is None and "no run qualifies" in out["verdict"]
    assert (tmp_path / "cmp" / "compare.html").is_file() and (tmp_path / "cmp" / "compare.md").is_file()
    assert invoke("compare", *three_runs, "--objective", "speed").exit_code == 2


def test_compare_two_real_runs_picks_the_smaller_student(run_dir, small_run_dir, tmp_path) -> None:
    records = {d: RunRecord.model_validate(json.loads((d / "metrics.json").read_text())) for d in (run_dir, small_run_dir)}
    wide, small = (records[d].final_step() for d in (run_dir, small_run_dir))
    assert wide is not None and small is not None
    assert (small.measures.file_bytes or 0) < (wide.measures.file_bytes or 0)
    assert (small.measures.macs or 0) < (wide.measures.macs or 0)
    baseline = max(r.baseline.measures.top1 or 0 for r in records.values() if r.baseline is not None)
    drop = baseline - (small.measures.top1 or 0)
    result = invoke("compare", run_dir, small_run_dir, "--max-drop", drop + 0.5, "--objective", "size",
                    "--baseline", "teacher", "--out", tmp_path / "cmp", "--json")
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["best"]["run_dir"] == str(small_run_dir) and out["reference"]["top1"] == baseline
    assert len(out["runs"]) == 2 and "confusion" not in out["runs"][0]
    html = (tmp_path / "cmp" / "compare.html").read_text()
    assert 'id="pareto"' in html and "data:image/png;base64," in html
