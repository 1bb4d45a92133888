"""report.html shows every latency spread and flag report.md shows, and both call a latency
difference a speed-up or a slow-down only when it exceeds the spread (one shared rule)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from distillcli.record import Measures, RunRecord
from distillcli.report.html import render_html
from distillcli.report.markdown import render
from distillcli.report.numbers import within_noise


def _record(run_dir: Path, last_ms: float, last_iqr: float) -> RunRecord:
    """The real run with every model at 2.29 ±0.05 ms at batch 8, but the last at ``last_ms`` ±``last_iqr``."""
    record = RunRecord.model_validate(json.loads((run_dir / "metrics.json").read_text()))
    assert record.baseline is not None
    for m in [record.baseline.measures] + [s.measures for s in record.steps]:
        m.latency_ms, m.latency_iqr_ms = {"8": 2.29}, {"8": 0.05}
    record.steps[-1].measures.latency_ms, record.steps[-1].measures.latency_iqr_ms = {"8": last_ms}, {"8": last_iqr}
    return record


def test_within_noise_is_a_difference_no_larger_than_the_spread() -> None:
    def m(ms: float, iqr: float | None) -> Measures:
        return Measures(latency_ms={"1": ms}, latency_iqr_ms={} if iqr is None else {"1": iqr})

    assert within_noise(m(2.29, 0.05), m(2.31, 0.87), "1")
    assert within_noise(m(2.0, 0.4), m(2.4, 0.4), "1") and not within_noise(m(2.0, 0.4), m(2.41, 0.4), "1")
    assert not within_noise(m(2.0, None), m(2.01, None), "1")  # no spread recorded: any difference counts
    assert not within_noise(m(2.0, 0.1), Measures(), "1")


def test_html_shows_the_spread_and_flag_and_calls_noise_the_same(run_dir: Path) -> None:
    record = _record(run_dir, 2.31, 0.87)  # 1.01x slower, well within a spread flagged as wide
    md, html = render(record), render_html(record, None)
    assert "2.31 ±0.87 \u26a0" in md and "2.31 ms ±0.87 \u26a0" in html
    assert "2.29 ±0.05" in md and "2.29 ms ±0.05" in html and html.count("\u26a0") >= 2  # the cell and the note
    assert "interquartile range" in html and "same within noise" in md
    assert "slower" not in html and "faster" not in html
    assert re.search(r"b8 same within noise<br>|b8 same within noise</td>", html)  # neutral: no colour span
    record = _record(run_dir, 3.5, 0.1)  # beyond the spread: a slow-down
    md, html = render(record), render_html(record, None)
    assert html.count('<span class="bad">1.53x slower</span>') == 2  # against the baseline and the step before
    assert "| 0.65x |" in md


def test_a_step_measured_on_another_device_is_marked_and_never_compared(run_dir: Path) -> None:
    """A CUDA run whose last model computed on the CPU (a .pt2 program): its latency is marked as the
    CPU's, no speed-up is computed against the GPU's times, and a note names the step and runtime."""
    record = _record(run_dir, 9.0, 0.1)
    record.run.device = "cuda"
    for m in [record.baseline.measures] + [s.measures for s in record.steps]:
        m.device = "cuda:0"
    last = record.steps[-1]
    last.measures.device, last.measures.runtime = "cpu", "torch.export program, compiled"
    md, html = render(record), render_html(record, None)
    assert "9.00 ±0.10 [cpu]" in md and "9.00 ms ±0.10 [cpu]" in html and "2.29 ±0.05 |" in md
    assert "| other device |" in md and "b8 other device" in html and "slower" not in md + html
    note = f"step {last.index} ({last.kind}) on cpu (torch.export program, compiled)"
    assert note in md and note in html and "Not on the run's device (cuda)" in md
    record.steps[-1].measures.device = "cuda:0"  # the same kind of device: compared as before
    assert "[cpu]" not in render(record) and "Not on the run's device" not in render(record)
