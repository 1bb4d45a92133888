"""Training objectives: weighted sums of the terms LOSSES names (``losses.registry``, torch-free).
The rest is fetched on first use (torch), so that ``losses.options``, ``losses.registry`` and
``losses.specs`` load alone when a recipe is validated."""

from distillcli.lazy import lazy_exports

__all__ = ["LOSSES", "KDOptions", "Objective", "make_objective"]
__getattr__ = lazy_exports(__name__, {"LOSSES": "registry", "KDOptions": "options", "Objective": "terms",
                                      "make_objective": "objectives"})
