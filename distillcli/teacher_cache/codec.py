"""How a batch of teacher logits is stored, and read back.

Up to ``TOPK_ABOVE`` classes every logit is kept as float16. Above it only the ``TOPK`` largest
are kept, with their classes, plus one fill logit per sample that every other class gets: the
one that gives them, together, the probability mass they had (at T = 1). The objectives always
train on the decoded logits, whether they were read or just computed, so a store hit gives the
same loss as a miss.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

TOPK_ABOVE = 100
TOPK = 32


def codec_name(num_classes: int) -> str:
    return "float16" if num_classes <= TOPK_ABOVE else f"float16-top{TOPK}"


def encode(logits: Tensor) -> dict[str, Tensor]:
    """Arrays of one batch (rows follow the batch): ``values`` and, for many classes, ``classes`` and ``fill``."""
    logits = logits.detach().float()
    classes = logits.shape[1]
    if classes <= TOPK_ABOVE:
        return {"values": logits.half()}
    top = logits.topk(TOPK, dim=1)
    rest = logits.scatter(1, top.indices, float("-inf"))
    fill = torch.logsumexp(rest, dim=1) - math.log(classes - TOPK)
    index_type = torch.int16 if classes <= torch.iinfo(torch.int16).max else torch.int32
    return {"values": top.values.half(), "classes": top.indices.to(index_type), "fill": fill.half()}


def decode(arrays: dict[str, Tensor], num_classes: int) -> Tensor:
    """float32 logits (rows, num_classes) from ``encode``'s arrays (or rows taken from them)."""
    values = arrays["values"].float()
    if "classes" not in arrays:
        return values
    full = arrays["fill"].float()[:, None].expand(-1, num_classes).contiguous()
    return full.scatter_(1, arrays["classes"].long(), values)
