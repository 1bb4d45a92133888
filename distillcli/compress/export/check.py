"""How closely a converted model follows its source on the same inputs."""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor


@torch.no_grad()
def agreement(reference: Callable[[Tensor], Tensor], candidate: Callable[[Tensor], Tensor],
              images: Tensor) -> dict[str, float]:
    """max |difference| of the logits (and max |logit| for scale), top-1 agreement (%) and the
    lowest per-image cosine similarity."""
    ref = reference(images).float().cpu()
    out = candidate(images).float().cpu()
    return {"max_abs_diff": float((ref - out).abs().max()), "max_abs_logit": float(ref.abs().max()),
            "top1_agreement": 100.0 * float((ref.argmax(1) == out.argmax(1)).float().mean()),
            "min_cosine": float(F.cosine_similarity(ref, out, dim=1).min()),
            "images": int(images.shape[0])}


def matches(result: dict[str, float], tolerance: float = 1e-3) -> bool:
    """An exact (float) conversion: logits equal up to ``tolerance`` relative to their scale."""
    return result["max_abs_diff"] <= tolerance * max(1.0, result["max_abs_logit"])
