"""Whole attention heads, for attention laid out as timm's ``Attention`` (``models.structure.is_attention``).

Torch-Pruning's channel groups would cut through heads (the forward reshapes ``qkv`` by
``num_heads``), so the channel pruner keeps those layers out of its graph and this module removes
heads instead: head h owns rows [h * head_dim, (h + 1) * head_dim) of each of q, k and v in
``qkv``, the same rows of ``gate``, entries of ``norm`` and input columns of ``proj``. The
module's head counts are then lowered (``models.structure.set_heads``), which model files record.
torchvision's ``nn.MultiheadAttention`` packs its projections in its own parameters and is not
laid out this way: its heads stay whole.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch_pruning as tp
from torch import Tensor, nn

from distillcli.errors import CompressionError
from distillcli.models.structure import is_attention, set_heads


def attention_modules(model: nn.Module) -> dict[str, nn.Module]:
    """{name: module} of every attention module whose heads can be removed."""
    return {name: m for name, m in model.named_modules() if is_attention(m)}


def head_layers(attention: nn.Module) -> list[nn.Linear]:
    """The Linear layers whose shapes follow the head count."""
    return [m for m in (attention.qkv, getattr(attention, "gate", None), attention.proj) if m is not None]


@torch.no_grad()
def head_scores(attention: nn.Module, criterion: tp.importance.Importance) -> Tensor | None:
    """Per-head importance the way ``criterion`` scores a channel, normalised by the mean: the sum
    of |w|^p (magnitude criteria: ``l1``, ``l2``) or of |w x grad| (``taylor``) over the head's
    ``qkv`` and ``gate`` rows and ``proj`` columns. None for other criteria (``bn_scale`` reads
    BatchNorms, which attention has none of) and for taylor without gradients: the heads stay whole."""
    heads, dim = attention.num_heads, attention.head_dim
    total = torch.zeros(heads)
    for layer in head_layers(attention):
        value = _weight_scores(layer.weight, criterion)
        if value is None:
            return None
        value = value.float().cpu()
        if layer is attention.proj:
            total += value.reshape(value.shape[0], heads, dim).sum(dim=(0, 2))
        else:  # rows (q, k, v) x heads x head_dim, or heads x head_dim for the gate
            total += value.reshape(-1, heads, dim, value.shape[1]).sum(dim=(0, 2, 3))
    return total / total.mean() if total.mean() > 0 else total


def _weight_scores(w: nn.Parameter, criterion: tp.importance.Importance) -> Tensor | None:
    if type(criterion) is tp.importance.GroupTaylorImportance:
        return None if w.grad is None else (w * w.grad).abs()
    if type(criterion) is tp.importance.GroupMagnitudeImportance:
        return w.abs().pow(criterion.p)
    return None  # subclasses (BatchNorm scale, LAMP ...) and plugins rank in ways heads do not have


def prune_heads(attention: nn.Module, idxs: Sequence[int]) -> None:
    """Remove heads ``idxs`` of an ``is_attention`` module in place (works on meta tensors too)."""
    heads, dim, width = attention.num_heads, attention.head_dim, attention.attn_dim
    drop = set(idxs)
    keep = [h for h in range(heads) if h not in drop]
    if not keep or not drop <= set(range(heads)):
        raise CompressionError(f"cannot remove heads {sorted(drop)} of an attention with {heads} heads",
                               "at least one head stays; use a lower ratio for this layer")
    columns = (torch.tensor(keep)[:, None] * dim + torch.arange(dim)).flatten()
    _select(attention.qkv, torch.cat([columns + j * width for j in range(3)]), 0)
    if getattr(attention, "gate", None) is not None:
        _select(attention.gate, columns, 0)
    _select(attention.proj, columns, 1)
    if isinstance(getattr(attention, "norm", None), nn.LayerNorm):
        _select(attention.norm, columns, 0)
        attention.norm.normalized_shape = (len(columns),)
    set_heads(attention, len(keep))


def _select(layer: nn.Module, index: Tensor, dim: int) -> None:
    """Keep entries ``index`` of the weight along ``dim`` and, when rows (dim 0) are kept, of the
    bias; a Linear's feature count follows."""
    for attr in ("weight", "bias"):
        p = getattr(layer, attr, None)
        if p is None or (attr == "bias" and dim == 1):
            continue
        setattr(layer, attr, nn.Parameter(p.data.index_select(dim, index.to(p.device)), p.requires_grad))
    if isinstance(layer, nn.Linear):
        setattr(layer, "out_features" if dim == 0 else "in_features", len(index))
