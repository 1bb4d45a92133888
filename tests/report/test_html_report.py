"""report.html of a real run: every section, valid embedded PNGs, nothing fetched, text escaped;
the confusion matrix agrees with the accuracy; ratios are worded by their direction."""

from __future__ import annotations

import base64
import io
import json
from html.parser import HTMLParser
from pathlib import Path

import matplotlib.image as mpimg
import pytest

from distillcli.measure import evaluate
from distillcli.models.build import build_model
from distillcli.models.handle import ArchSpec
from distillcli.record import Measures, RunRecord
from distillcli.report.html import render_html
from distillcli.report.numbers import ms, points, size_ratio, speed_ratio
from distillcli.report.plots import pareto_front
from tests.conftest import tiny_synthetic

SECTIONS = {"summary", "steps", "step-facts", "pareto", "curves", "per-class", "confusion", "environment", "recipe"}


class Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.images: list[str] = []
        self.external: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if a.get("id"):
            self.ids.add(a["id"] or "")
        if tag == "img":
            self.images.append(a.get("src") or "")
        for key in ("src", "href"):
            if (a.get(key) or "").startswith(("http:", "https:", "//")) or tag in ("link", "script"):
                self.external.append(f"{tag} {a}")


def parse(text: str) -> Page:
    page = Page()
    page.feed(text)
    return page


def load(run_dir: Path) -> RunRecord:
    return RunRecord.model_validate(json.loads((run_dir / "metrics.json").read_text()))


def test_report_html_holds_every_section_and_valid_charts(run_dir) -> None:
    text = (run_dir / "report.html").read_text()
    page = parse(text)
    assert SECTIONS <= page.ids
    assert not page.external, page.external
    assert len(page.images) == 4  # pareto, curves, per-class, confusion
    for src in page.images:
        prefix = "data:image/png;base64,"
        assert src.startswith(prefix)
        png = base64.b64decode(src[len(prefix):], validate=True)
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
        pixels = mpimg.imread(io.BytesIO(png), format="png")
        assert pixels.shape[0] > 200 and pixels.shape[1] > 300 and pixels.std() > 0.01  # not blank
    record = load(run_dir)
    assert record.run.recipe_hash in text and "train_size: 256" in text  # header and the recipe
    assert "0.28212890625" not in text and "baseline</span>" in text


def test_confusion_matrix_agrees_with_accuracy(run_dir) -> None:
    final = load(run_dir).final_step()
    assert final is not None
    m = final.measures
    assert m.confusion is not None and len(m.confusion) == 4 and all(len(r) == 4 for r in m.confusion)
    assert sum(map(sum, m.confusion)) == m.samples == 64
    assert sum(m.confusion[i][i] for i in range(4)) == pytest.approx(m.top1 * 64 / 100)
    for row, acc, i in zip(m.confusion, m.per_class_top1, range(4)):
        assert acc == pytest.approx(100 * row[i] / sum(row), abs=1e-3)
    assert "confusion" not in m.summary() and "per_class_top1" not in m.summary()


def test_evaluate_confusion_rows_are_true_classes(one_thread) -> None:
    import torch

    data = tiny_synthetic()
    torch.manual_seed(0)
    model = build_model(ArchSpec("cnn", 4, 3, data.mean, data.std, {"width": 4})).eval()
    out = evaluate(model, data.val, 4)
    truth = [0] * 4
    for _, labels, _ in data.val:
        for y in labels.tolist():
            truth[y] += 1
    assert [sum(r) for r in out["confusion"]] == truth


def test_text_is_escaped_and_a_grown_file_says_larger(run_dir) -> None:
    record = load(run_dir).model_copy(deep=True)
    record.run.name = "<script>alert(1)</script>"
    record.run.status, record.run.error = "failed", "loss is <nan> & diverged"
    last = record.steps[-1].measures
    before = record.steps[-2].measures
    last.file_bytes, before.file_bytes = 140_000, 100_000
    last.latency_ms, before.latency_ms = {"1": 2.0, "8": 30.0}, {"1": 1.0, "8": 10.0}
    text = render_html(record, "name: <b>x</b> & y\n")
    assert "<script>" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "loss is &lt;nan&gt; &amp; diverged" in text and "name: &lt;b&gt;x&lt;/b&gt; &amp; y" in text
    assert "1.40x larger" in text and "3.00x slower" in text and "0.71x" not in text


def test_ratio_and_number_wording() -> None:
    assert size_ratio(100, 140) == "1.40x larger" and size_ratio(140, 100) == "1.40x smaller"
    assert speed_ratio(10.0, 4.0) == "2.50x faster" and speed_ratio(4.0, 10.0) == "2.50x slower"
    assert size_ratio(1000, 1001) == "same" and size_ratio(None, 5) == "-" and size_ratio(3000, 20) == "150x smaller"
    assert points(-0.28212890625) == "-0.28 pts" and points(0.001) == "±0.00 pts"
    assert ms(0.28212890625) == "0.282 ms" and ms(12.3456) == "12.3 ms" and ms(1234.5) == "1234 ms"


def test_pareto_front() -> None:
    # (cost, top-1): the third is beaten by the first (cheaper and as accurate), the fourth by the second
    assert pareto_front([(1.0, 70.0), (2.0, 80.0), (3.0, 70.0), (2.0, 79.0), (5.0, 90.0)]) == [0, 1, 4]


def test_a_run_without_steps_still_renders(run_dir) -> None:
    record = load(run_dir).model_copy(deep=True)
    record.steps, record.baseline = [], None
    record.run.status = "failed"
    page = parse(render_html(record, None))
    assert SECTIONS <= page.ids and page.images == []
    assert Measures().confusion is None  # records written before the field existed still load
