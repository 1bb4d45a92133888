"""Pruning: structural (channels removed, really faster) and unstructured (weights zeroed)."""

from distillcli.compress.pruning.importance import ImportanceName, accumulate_gradients, make_importance
from distillcli.compress.pruning.recalibrate import recalibrate_batchnorm
from distillcli.compress.pruning.schedules import AgpSchedule, iterative_fractions
from distillcli.compress.pruning.search import nearest_ratio, search_ratio
from distillcli.compress.pruning.sensitivity import Sensitivity, SensitivityRow, analyse, overrides_yaml
from distillcli.compress.pruning.structured import ChannelGroup, ChannelPruner, Plan, kept_channels
from distillcli.compress.pruning.unstructured import NOTE as UNSTRUCTURED_NOTE
from distillcli.compress.pruning.unstructured import MagnitudePruner, dense_bytes, sparse_bytes

__all__ = [
    "AgpSchedule", "ChannelGroup", "ChannelPruner", "ImportanceName", "MagnitudePruner", "Plan",
    "Sensitivity", "SensitivityRow", "UNSTRUCTURED_NOTE", "accumulate_gradients", "analyse", "dense_bytes",
    "iterative_fractions", "kept_channels", "make_importance", "overrides_yaml", "recalibrate_batchnorm",
    "nearest_ratio", "search_ratio", "sparse_bytes",
]
