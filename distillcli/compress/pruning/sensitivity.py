"""Sensitivity analysis: prune each channel group alone at several ratios and measure accuracy.

Layers whose accuracy barely moves can be pruned hard; the others should be spared. The
result suggests per-layer ``overrides`` for the prune step under an accuracy-drop budget.
Accuracy is taken right after pruning (no BatchNorm recalibration, no fine-tuning): it
ranks the layers against each other rather than predicting the final accuracy.
"""

from __future__ import annotations

import csv
import io
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import torch
import yaml
from torch import nn

from distillcli.compress.pruning.importance import ImportanceName, accumulate_gradients, needs_gradients
from distillcli.compress.pruning.structured import ChannelPruner
from distillcli.data.bundle import DataBundle
from distillcli.atomic_write import atomic_path, write_text
from distillcli.measure import count_macs, evaluate
from distillcli.progress import Progress, SilentProgress


@dataclass
class SensitivityRow:
    layer: str  # the group's first layer
    ratio: float
    channels: int
    kept: int
    top1: float
    drop: float  # percentage points below the unpruned model
    mac_reduction: float  # of the whole model


@dataclass
class Sensitivity:
    baseline_top1: float
    rows: list[SensitivityRow]

    def layers(self) -> list[str]:
        return list(dict.fromkeys(r.layer for r in self.rows))

    def suggest(self, max_drop: float) -> dict[str, float]:
        """Per layer, the largest tried ratio whose accuracy drop stays within ``max_drop``
        percentage points (0.0: do not prune it)."""
        return {layer: max((r.ratio for r in self.rows if r.layer == layer and r.drop <= max_drop), default=0.0)
                for layer in self.layers()}

    def write_csv(self, path: str | Path) -> None:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(SensitivityRow.__dataclass_fields__))
        writer.writeheader()
        writer.writerows(asdict(r) for r in self.rows)
        write_text(path, buffer.getvalue())

    def plot(self, path: str | Path) -> None:
        """Accuracy against ratio, one line per layer (Agg canvas: no display needed)."""
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        fig = Figure(figsize=(9, 5.5))
        FigureCanvasAgg(fig)
        ax = fig.subplots()
        for layer in self.layers():
            rows = [r for r in self.rows if r.layer == layer]
            ax.plot([0.0] + [r.ratio for r in rows], [self.baseline_top1] + [r.top1 for r in rows],
                    marker="o", label=layer)
        ax.set_xlabel("fraction of the layer's channels removed")
        ax.set_ylabel("top-1 accuracy (%)")
        ax.set_title("pruning sensitivity (one layer pruned at a time)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="x-small", ncol=max(1, len(self.layers()) // 20), loc="center left",
                  bbox_to_anchor=(1.01, 0.5))
        fig.tight_layout()
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=120)


def overrides_yaml(overrides: dict[str, float]) -> str:
    """The ``overrides:`` block to paste into a prune step."""
    return yaml.safe_dump({"overrides": {k: round(v, 4) for k, v in overrides.items()}}, sort_keys=False)


def analyse(model: nn.Module, data: DataBundle, device: torch.device, ratios: Sequence[float],
            importance: ImportanceName = "l1", ignore: Sequence[str] = (), importance_batches: int = 8,
            progress: Progress | None = None) -> Sensitivity:
    """Prune every channel group of ``model`` alone at each of ``ratios`` and evaluate on
    ``data.val``; the model itself is left unchanged."""
    progress = progress or SilentProgress()
    if needs_gradients(importance):
        accumulate_gradients(model, data.train, importance_batches)
    pruner = ChannelPruner(model, data.input_shape, importance, ignore)
    model.zero_grad(set_to_none=True)
    baseline = evaluate(model, data.val, data.num_classes)["top1"]
    base_macs = count_macs(model, data.input_shape, device) or 0
    rows: list[SensitivityRow] = []
    progress.start("sensitivity", len(pruner.groups))
    for i, group in enumerate(pruner.groups):
        for ratio in ratios:
            plan = pruner.plan(0.0, overrides={group.name: ratio})
            pruned = pruner.apply(plan)
            top1 = evaluate(pruned, data.val, data.num_classes)["top1"]
            macs = count_macs(pruned, data.input_shape, device) or 0
            rows.append(SensitivityRow(group.name, ratio, group.channels, group.channels - len(plan.get(group.name, [])),
                                       top1, baseline - top1, base_macs / macs if macs else 1.0))
        progress.update(i + 1)
    progress.finish()
    return Sensitivity(baseline, rows)
