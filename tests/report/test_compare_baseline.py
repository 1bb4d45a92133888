"""`distill compare` says which baseline --max-drop is measured against, takes --baseline (default:
the first run given), so that a run compared with itself qualifies, and refuses an existing
output folder without --force."""

from __future__ import annotations

import json
from pathlib import Path

from distillcli.record import RunRecord
from distillcli.report.compare import compare_runs, render_md
from tests.report.test_report_commands import invoke, three_runs  # noqa: F401  (a fixture)


def test_a_run_compared_with_itself_qualifies(run_dir: Path, tmp_path: Path) -> None:
    for runs in ([run_dir], [run_dir, run_dir]):
        out = tmp_path / f"cmp{len(runs)}"
        result = invoke("compare", *runs, "--max-drop", 1, "--out", out, "--json")
        assert result.exit_code == 0, result.output
        summary = json.loads(result.stdout)
        assert summary["best"] is not None and "no run qualifies" not in summary["verdict"]
        assert summary["reference"]["run"] == ("run" if len(runs) == 1 else "run #1")
        assert summary["reference"]["from"] == f"the final model of {summary['reference']['run']}"


def test_the_default_baseline_is_the_first_run_and_every_output_names_it(three_runs) -> None:  # noqa: F811
    result = compare_runs(three_runs, 1.0, "latency")  # x 89.5 % at 10 ms, y 87.0 % at 5 ms, z 89.8 % at 20 ms
    assert (result.reference, result.reference_from) == (89.5, "the final model of x")
    assert [e.qualifies for e in result.entries] == [True, False, True] and result.best is result.entries[0]
    md = render_md(result)
    assert "within 1 pts of the baseline top-1 89.50 % (the final model of x)" in md
    assert "| x | ok |" in md and "| baseline |" in md  # x's own row: it is the baseline
    shown = invoke("compare", *three_runs, "--out", three_runs[0].parent / "cmp")
    assert shown.exit_code == 0, shown.output
    assert "against the final model of x, top-1 89.50 %" in shown.stdout.replace("\n", " ")


def test_baseline_by_label_directory_or_teacher(three_runs) -> None:  # noqa: F811
    x, _, z = three_runs
    assert compare_runs(three_runs, 1.0, "latency", baseline="y").best is not None
    by_label, by_dir = (compare_runs(three_runs, 0.5, "latency", baseline=b) for b in ("z", str(z)))
    assert by_label.reference == by_dir.reference == 89.8 and by_label.baseline is by_label.entries[2]
    assert [e.label for e in by_label.entries if e.qualifies] == ["x", "z"]
    teacher = compare_runs(three_runs, 0.5, "latency", baseline="teacher")
    assert (teacher.reference, teacher.reference_from) == (90.0, "the teacher after step 0 of x")
    assert teacher.baseline is None
    result = invoke("compare", *three_runs, "--baseline", "w", "--out", x.parent / "cmp")
    assert result.exit_code == 2 and "--baseline 'w' is not one of the runs compared" in result.stderr
    assert "x, y, z" in result.stderr and not (x.parent / "cmp").exists()


def test_an_existing_output_folder_needs_force(three_runs, tmp_path: Path) -> None:  # noqa: F811
    out = tmp_path / "cmp"
    out.mkdir()
    (out / "compare.md").write_text("mine")
    result = invoke("compare", *three_runs, "--out", out)
    assert result.exit_code == 2 and "already exists" in result.stderr and "--force" in result.stderr
    assert (out / "compare.md").read_text() == "mine" and not (out / "compare.html").exists()
    result = invoke("compare", *three_runs, "--out", out, "--force")
    assert result.exit_code == 0, result.output
    assert (out / "compare.md").read_text().startswith("# compare") and (out / "compare.html").is_file()


def test_latencies_timed_in_different_places_choose_nothing(three_runs) -> None:  # noqa: F811
    """A run timed on a GPU (or on another machine) is not 'faster' than one timed on this CPU:
    by latency nothing is chosen, and the verdict says where each was timed and what to do; size
    and MACs still compare."""
    y = three_runs[1] / "metrics.json"
    record = RunRecord.model_validate(json.loads(y.read_text()))
    final = record.final_step()
    assert final is not None
    final.measures.device = "cuda:0"
    y.write_text(json.dumps(record.to_json()))
    result = compare_runs(three_runs, 5.0, "latency", baseline="teacher")
    assert result.best is None and len(result.timed_in) == 2 and result.timed_in[1].startswith("cuda")
    assert "no choice by latency: the final models were timed in different places" in render_md(result)
    assert "--objective size or macs" in render_md(result)
    assert compare_runs(three_runs, 5.0, "size", baseline="teacher").best is not None
    final.measures.device = "cpu"  # the same place again: y, the fastest within 5 pts, is chosen as before
    y.write_text(json.dumps(record.to_json()))
    assert compare_runs(three_runs, 5.0, "latency", baseline="teacher").best.label == "y"
