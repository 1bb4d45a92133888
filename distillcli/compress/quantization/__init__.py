"""Quantization: int8 (static, dynamic, QAT) through PT2E, and half-precision weights.

Every result is a torch.export program (see compress.export.program), saved as ``.pt2``.
"""

from distillcli.compress.quantization.half import HalfKind, computes_in, half_program
from distillcli.compress.quantization.layers import check_coverage, resolve_skip, weighted_layers
from distillcli.compress.quantization.pt2e import Scheme, calibrate, convert, make_quantizer, prepare

__all__ = ["HalfKind", "Scheme", "calibrate", "check_coverage", "computes_in", "convert", "half_program",
           "make_quantizer", "prepare", "resolve_skip", "weighted_layers"]
