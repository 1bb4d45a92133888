"""The names compression options accept, as types. Torch-free (``compress.pruning`` and
``compress.sharing`` are not), so a recipe's step options validate without loading the methods."""

from __future__ import annotations

from typing import Literal

ImportanceName = Literal["l1", "l2", "bn_scale", "taylor"]  # channel scores, see pruning.importance
Reduce = Literal["sum", "mean"]  # a shared value's gradient over its weights, see sharing.tuning
