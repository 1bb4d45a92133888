"""What compression options accept, known without torch (``compress.pruning`` and
``compress.sharing`` import it), so a recipe's step options validate without loading the methods.

Channel importance criteria are entries of ``IMPORTANCES``: each target is a function returning a
torch-pruning group criterion (``compress.pruning.importance``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from distillcli.registry import Entry, Registry


@dataclass(frozen=True, kw_only=True)
class ImportanceEntry(Entry):
    needs_gradients: bool = False  # scores from gradients: training batches are run first
    per_weight: bool = False  # also ranks single weights (unstructured pruning)


def _criterion(name: str, summary: str, **caps: bool) -> ImportanceEntry:
    return ImportanceEntry(name=name, target=f"distillcli.compress.pruning.importance:{name}", summary=summary, **caps)


IMPORTANCES: Registry[ImportanceEntry] = Registry("importance", ImportanceEntry, [
    _criterion("l1", "L1 norm of the channel's weights", per_weight=True),
    _criterion("l2", "L2 norm of the channel's weights", per_weight=True),
    _criterion("bn_scale", "|gamma| of its BatchNorms (Liu et al. 2017)"),
    _criterion("taylor", "|weight x gradient| (Molchanov et al. 2019)", needs_gradients=True),
], group="distillcli.importances")

ImportanceName = Literal[tuple(IMPORTANCES.names())]  # type: ignore[valid-type]
Reduce = Literal["sum", "mean"]  # a shared value's gradient over its weights, see sharing.tuning
