"""Sensitivity analysis: one group pruned at a time; suggestions feed the prune step's overrides."""

from __future__ import annotations

import pytest
import torch
import yaml

from distillcli.compress.pruning import ChannelPruner, Sensitivity, SensitivityRow, analyse, overrides_yaml
from distillcli.data import load_data
from distillcli.data.config import DataConfig
from distillcli.models.build import build_model
from distillcli.models.handle import ArchSpec
from distillcli.steps.prune import PruneConfig


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: one thread is faster and immune to load


def row(layer: str, ratio: float, drop: float) -> SensitivityRow:
    return SensitivityRow(layer, ratio, 16, int(16 * (1 - ratio)), 90.0 - drop, drop, 1.0)


def test_suggestion_is_the_largest_ratio_within_budget() -> None:
    result = Sensitivity(90.0, [row("a", 0.25, 0.1), row("a", 0.5, 0.4), row("a", 0.75, 3.0),
                                row("b", 0.25, 2.0), row("b", 0.5, 5.0),
                                row("c", 0.25, 0.0), row("c", 0.5, 0.9)])
    assert result.suggest(1.0) == {"a": 0.5, "b": 0.0, "c": 0.5}
    snippet = yaml.safe_load(overrides_yaml(result.suggest(1.0)))
    assert PruneConfig(sparsity=0.3, **snippet).overrides == {"a": 0.5, "b": 0.0, "c": 0.5}


def test_analyse_prunes_each_group_alone_and_leaves_the_model(tmp_path) -> None:
    data = load_data(DataConfig(name="synthetic", num_classes=4, image_size=16, train_size=32, val_size=32,
                                batch_size=16), device=torch.device("cpu"), seed=0, channels_last=False)
    torch.manual_seed(0)
    model = build_model(ArchSpec("cnn", 4, 3, data.mean, data.std, {"width": 8}))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = analyse(model, data, torch.device("cpu"), [0.5, 0.75], importance="taylor", importance_batches=1)
    assert result.layers() == ["net.stages.0.0", "net.stages.1.0", "net.stages.2.0"]
    assert [(r.ratio, r.kept) for r in result.rows[:2]] == [(0.5, 4), (0.75, 2)]
    assert all(r.mac_reduction > 1 and r.drop == pytest.approx(result.baseline_top1 - r.top1) for r in result.rows)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    result.write_csv(tmp_path / "s.csv")
    result.plot(tmp_path / "s.png")
    assert (tmp_path / "s.csv").read_text().splitlines()[0].startswith("layer,ratio,channels")
    assert (tmp_path / "s.png").stat().st_size > 1000
    plan = ChannelPruner(model, data.input_shape).plan(0.0, overrides=result.suggest(100.0))
    assert {k: len(v) for k, v in plan.items()} == {"net.stages.0.0": 6, "net.stages.1.0": 12, "net.stages.2.0": 24}
