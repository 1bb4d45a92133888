"""Torch-pruning rule for the option-A shortcut (``ZeroPadShortcut``).

Left to itself, torch-pruning treats the shortcut's index_select as an element-wise op and
ties the residual channels of two stages together with the wrong index mapping. Registered
as a customized layer, the shortcut becomes a node with two independent channel dimensions:
its outputs belong to the next stage's residual group, its inputs to the previous stage's.
Both edits touch only ``gather_index`` (output j = input gather_index[j], or the appended
zero channel where gather_index[j] == in_channels).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch_pruning as tp

from distillcli.models.cifar_resnet import ZeroPadShortcut


class ZeroPadShortcutPruner(tp.pruner.BasePruningFunc):
    TARGET_MODULES = (ZeroPadShortcut,)

    def prune_out_channels(self, layer: ZeroPadShortcut, idxs: Sequence[int]) -> ZeroPadShortcut:
        """Drop output channels: remove their entries from the gather index."""
        drop = set(idxs)
        keep = [j for j in range(layer.gather_index.numel()) if j not in drop]
        layer.gather_index = layer.gather_index[torch.tensor(keep, device=layer.gather_index.device)]
        return layer

    def prune_in_channels(self, layer: ZeroPadShortcut, idxs: Sequence[int]) -> ZeroPadShortcut:
        """Drop input channels: outputs that copied a removed channel now copy the zero
        channel; the remaining input channels are renumbered."""
        index = layer.gather_index
        old_in = layer.in_channels
        kept = torch.ones(old_in, dtype=torch.bool)
        kept[list(idxs)] = False
        new_in = int(kept.sum())
        remap = torch.full((old_in + 1,), new_in, dtype=torch.long)  # old index -> new index
        remap[:old_in][kept] = torch.arange(new_in)
        layer.gather_index = remap.to(index.device)[index]
        layer.in_channels = new_in
        return layer

    def get_out_channels(self, layer: ZeroPadShortcut) -> int:
        return layer.gather_index.numel()

    def get_in_channels(self, layer: ZeroPadShortcut) -> int:
        return layer.in_channels


CUSTOM_PRUNERS: dict[type, tp.pruner.BasePruningFunc] = {ZeroPadShortcut: ZeroPadShortcutPruner()}
