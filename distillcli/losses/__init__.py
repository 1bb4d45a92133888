"""Training objectives, registered by name in LOSSES."""

from distillcli.losses import classification, kd  # noqa: F401  (register)
from distillcli.losses.objectives import KDOptions, make_objective
from distillcli.losses.registry import LOSSES, Objective

__all__ = ["LOSSES", "KDOptions", "Objective", "make_objective"]
