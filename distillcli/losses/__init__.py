"""Training objectives, registered by name in LOSSES. Names are fetched on first use (torch),
so that ``losses.options`` and ``losses.specs`` load alone when a recipe is validated."""

from distillcli.lazy import lazy_exports

__all__ = ["LOSSES", "KDOptions", "Objective", "make_objective"]
__getattr__ = lazy_exports(__name__, {"LOSSES": "objectives", "KDOptions": "options", "Objective": "registry",
                                      "make_objective": "objectives"})
