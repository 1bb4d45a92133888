"""Step facts are typed by the step's kind (schema version 4). A version-3 metrics.json, whose steps
kept their facts and the engine's warning in a free-form ``info`` dict, loads as version 4: the facts
typed, the warning in ``warnings``, keys no longer recorded dropped."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from distillcli.cli import app
from distillcli.facts import PruneFacts, QuantizeFacts, ShareFacts
from distillcli.record import SCHEMA_VERSION, RunRecord, StepRecord
from distillcli.report import load_record

runner = CliRunner()
WARNING = "top-1 10.00 % is at chance level (1.5x of 1/4 classes or less): the model collapsed"


def _v3_record() -> dict:
    """A metrics.json as distillcli wrote it at schema version 3, by hand."""
    measures = {"top1": 75.0, "samples": 40, "params": 1000, "macs": 5000, "latency_ms": {}}
    prune = {"method": "channel", "schedule": "oneshot", "importance": "l1", "scope": "layer", "round_to": 8,
             "ratio": 0.3, "ratios": [0.3], "target_mac_reduction": None, "channels_removed": 0.3,
             "channels": {"net.conv1": [16, 8]}, "params_before": 1000, "params_after": 600, "macs_before": 5000,
             "macs_after": 2500, "mac_reduction": 2.0, "sparsity": 0.4, "retired_key": "dropped on reading"}
    quantize = {"method": "static", "calibration_images": 64, "int8_layers": 4, "int8_weight_share": 0.98,
                "skipped": ["net.conv1", "net.fc"], "target": "avx2", "target_machine": "x86_64 AVX2 (no VNNI)", "reduce_range": True,
                "quantizer": "x86_inductor", "compiled": False}
    steps = [("train", {"warning": WARNING}), ("prune", prune), ("quantize", quantize), ("evaluate", {})]
    return {"schema": "distillcli.metrics", "schema_version": 3,
            "run": {"name": "old", "status": "ok", "seed": 0},
            "data": {"name": "synthetic", "num_classes": 4, "class_names": list("abcd"), "input_shape": [3, 8, 8],
                     "train_samples": 100, "test_samples": 40},
            "steps": [{"index": i, "kind": kind, "target": "student", "measures": measures, "info": info}
                      for i, (kind, info) in enumerate(steps)]}


def test_a_version_3_record_loads_with_typed_facts_and_its_warning(tmp_path) -> None:
    (tmp_path / "metrics.json").write_text(json.dumps(_v3_record()))
    record = load_record(tmp_path)
    assert record.schema_version == SCHEMA_VERSION == 4
    train, prune, quantize, evaluate = record.steps
    assert train.info is None and train.warnings == [WARNING]
    assert isinstance(prune.info, PruneFacts) and not prune.warnings
    assert prune.info.channels == {"net.conv1": (16, 8)} and prune.info.mac_reduction == 2.0
    assert isinstance(quantize.info, QuantizeFacts) and quantize.info.target == "avx2" and quantize.info.compiled is False
    assert evaluate.info is None and not evaluate.warnings
    written = record.to_json()
    assert written["steps"][1]["info"]["step"] == "prune" and "retired_key" not in written["steps"][1]["info"]
    assert RunRecord.model_validate(written) == record  # written back as version 4, read the same


def test_report_renders_a_version_3_run_with_its_facts_and_warning(tmp_path) -> None:
    (tmp_path / "metrics.json").write_text(json.dumps(_v3_record()))
    result = runner.invoke(app, ["report", str(tmp_path)])
    assert result.exit_code == 0, result.output
    md = (tmp_path / "report.md").read_text()
    assert f"## step 0: train\n\n- warning: {WARNING}" in md
    assert "## step 1: prune" in md and "- mac_reduction: 2\n" in md and "- target_machine: x86_64 AVX2" in md
    assert "## step 3" not in md  # evaluate records no facts
    assert "- skipped: net.conv1, net.fc\n" in md and "- ratios: 0.3\n" in md  # lists of names / numbers
    assert "- channels:" not in md  # per-layer tables stay in metrics.json
    html = (tmp_path / "report.html").read_text()
    facts = html[html.index('id="step-facts"'):html.index('id="pareto"')]
    assert "<h3>step 2: quantize</h3>" in facts and "<th>skipped</th><td>net.conv1, net.fc</td>" in facts
    assert f"<th>warning</th><td>{WARNING}</td>" in facts and "step 3" not in facts


def test_facts_are_checked_against_the_step_kind() -> None:
    share = {"step": "share", "clusters": 8, "linear_clusters": 8, "shared_layers": 4, "fp32_bytes": 400,
             "pruned_bytes": 400, "pruned_ratio": 1.0, "shared_bytes": 100, "shared_ratio": 4.0, "huffman_bytes": 80,
             "huffman_ratio": 5.0, "shared_weight_sparsity": 0.0, "size_layers": []}
    step = StepRecord(index=0, kind="share", target="student", info=share)
    assert isinstance(step.info, ShareFacts) and step.info.huffman_bytes == 80
    with pytest.raises(ValidationError, match="size"):
        StepRecord(index=0, kind="share", target="student", info={**share, "size": 1})
    with pytest.raises(ValidationError, match="step"):
        StepRecord(index=0, kind="share", target="student", info={k: v for k, v in share.items() if k != "step"})


def test_schema_command_prints_the_typed_facts() -> None:
    result = runner.invoke(app, ["schema", "--metrics"])
    assert result.exit_code == 0, result.output
    schema = json.loads(result.stdout)
    assert schema["properties"]["schema_version"]["const"] == 4
    assert {"PruneFacts", "QuantizeFacts", "ExportFacts", "ShareFacts", "SensitivityFacts"} <= set(schema["$defs"])
    assert "warnings" in schema["$defs"]["StepRecord"]["properties"]
