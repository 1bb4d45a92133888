"""Which layers a quantization should reach, which the user opted out, and which it missed."""

from __future__ import annotations

import fnmatch
from typing import Iterable

import torch
from torch import nn
from torch.fx import GraphModule, Node

from distillcli.errors import CompressionError, OptionError
from distillcli.registry import closest

_NORMS = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, nn.LocalResponseNorm)
ANNOTATION = "quantization_annotation"  # the node.meta key PT2E quantizers annotate


def weighted_layers(model: nn.Module) -> dict[str, str]:
    """{module name: type name} of the layers that own a weight and compute with it (not norms)."""
    return {name: type(m).__name__ for name, m in model.named_modules()
            if isinstance(getattr(m, "weight", None), nn.Parameter) and not isinstance(m, _NORMS)}


def resolve_skip(model: nn.Module, patterns: Iterable[str]) -> list[str]:
    """Module names matching any wildcard pattern (``net.layer3.*``); a pattern that matches no
    module is an error with the closest name."""
    names = [n for n, _ in model.named_modules() if n]
    out: list[str] = []
    for pattern in patterns:
        hits = fnmatch.filter(names, pattern)
        if not hits:
            guess = closest(pattern, names)
            raise OptionError(f"skip pattern {pattern!r} matches no layer of the model",
                              f"did you mean {guess!r}?" if guess else f"layers are named like {', '.join(names[:4])} ...")
        out += [h for h in hits if h not in out]
    return out


def node_module(node: Node) -> str | None:
    """The innermost module a graph node was traced from."""
    stack = node.meta.get("nn_module_stack")
    return list(stack.values())[-1][0] if stack else None


def in_modules(node: Node, names: set[str]) -> bool:
    stack = node.meta.get("nn_module_stack") or {}
    return any(path in names for path, _ in stack.values())


def quantized_layers(prepared: GraphModule) -> set[str]:
    """Modules whose weight the quantizer annotated for int8 (activations are uint8 here)."""
    out: set[str] = set()
    for node in prepared.graph.nodes:
        annotation = node.meta.get(ANNOTATION)
        specs = getattr(annotation, "input_qspec_map", {}) or {}
        if any(getattr(spec, "dtype", None) == torch.int8 for spec in specs.values()):
            name = node_module(node)
            if name is not None:
                out.add(name)
    return out


def check_coverage(prepared: GraphModule, wanted: dict[str, str], skipped: list[str], method: str) -> None:
    """Raise naming every wanted layer the quantizer left in floating point (unless opted out)."""
    done = quantized_layers(prepared)
    missed = [f"{name} ({kind})" for name, kind in wanted.items()
              if name not in done and not any(name == s or name.startswith(s + ".") for s in skipped)]
    if missed:
        shown = ", ".join(missed[:6]) + (f" ... (+{len(missed) - 6} more)" if len(missed) > 6 else "")
        first = missed[0].split(" ")[0]
        raise CompressionError(
            f"{method} int8 cannot quantize {len(missed)} layer(s): {shown}; the x86 int8 backend has kernels "
            "for Conv2d and Linear only",
            f"keep them in floating point with skip: ['{first}'] (or --skip '{first}'), or use method: bf16")
