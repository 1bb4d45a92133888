"""One activation module called at several places (torchvision's ResNet blocks call ``self.relu``
twice) is one "source partition" with several outputs to the PT2E quantizers, which then refuse
the model ("Input partition has more than one output node"). A stateless activation computes the
same whatever instance runs it, so each call is given a source of its own before annotation."""

from __future__ import annotations

from collections import Counter

from torch import nn
from torch.fx import GraphModule, Node

# Modules whose every call is exactly one op and holds no state: splitting their calls changes nothing.
_STATELESS = (nn.ReLU, nn.ReLU6, nn.Hardswish, nn.Hardsigmoid, nn.SiLU, nn.GELU, nn.Sigmoid, nn.Tanh)
_NAMES = {f"{c.__module__}.{c.__qualname__}" for c in _STATELESS}  # how a non-strict export records them


def _stateless(kind: object) -> bool:
    return (isinstance(kind, type) and issubclass(kind, _STATELESS)) or kind in _NAMES


def _source(node: Node) -> str | None:
    stack = node.meta.get("source_fn_stack")
    if stack and _stateless(stack[-1][1]):
        return stack[-1][0]
    modules = node.meta.get("nn_module_stack")
    if modules:
        fqn, cls = list(modules.values())[-1]
        if _stateless(cls):
            return fqn
    return None


def split_shared_activations(model: GraphModule) -> int:
    """Give every call of a shared stateless activation module its own source; returns the calls split."""
    nodes = [n for n in model.graph.nodes if n.op == "call_function" and _source(n) is not None]
    counts = Counter(_source(n) for n in nodes)
    seen: Counter[str] = Counter()
    split = 0
    for node in nodes:
        name = _source(node)
        assert name is not None
        if counts[name] < 2:
            continue
        seen[name] += 1
        unique = f"{name}.call{seen[name]}"
        if node.meta.get("source_fn_stack"):
            *outer, (_, kind) = node.meta["source_fn_stack"]
            node.meta["source_fn_stack"] = [*outer, (unique, kind)]
        if node.meta.get("nn_module_stack"):
            stack = dict(node.meta["nn_module_stack"])
            key = list(stack)[-1]
            stack[key] = (unique, stack[key][1])
            node.meta["nn_module_stack"] = stack
        split += 1
    return split
