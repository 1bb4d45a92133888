"""Keep int8 through data-movement ops: slicing, gathering and zero-filling a quantized tensor.

torchao's x86 quantizer carries int8 through pooling, flatten and cat only. Any other op in
between leaves its input in float, so the conv that produces it must write fp32 instead of
uint8. In a CIFAR ResNet the option-A shortcut (subsample, then lay the channels out among
zero channels: slice -> slice -> new_zeros -> cat -> index_select) is such a chain:
- the last residual block of each stage then writes a 4x larger fp32 output;
- the fused conv-add op copies its accumulator once per call, and that copy grows with it;
- extra dequantize / quantize kernels run around the chain.

ResNet-56's int8 program ran about 10 % slower for this.

Such a chain only moves values or adds zeros, so it computes the same on int8 as on float when
it reads and writes with its input's scale (zero maps to the zero point). ``annotate_moves`` marks
each chain that starts at a tensor that is quantized anyway (another consumer already wants it
int8) and ends where every consumer wants int8: the chain's input shares that consumer's
observer, its output shares the input's. Inductor then fuses the whole chain into one
uint8 -> uint8 kernel.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch.fx import GraphModule, Node

from distillcli.compress.quantization.layers import ANNOTATION

_aten = torch.ops.aten
MOVES = {_aten.slice.Tensor, _aten.index_select.default, _aten.cat.default, _aten.constant_pad_nd.default}
ZERO_FILLS = {_aten.new_zeros.default, _aten.zeros_like.default}


def _wants_int8(consumer: Node, value: Node) -> bool:
    annotation = consumer.meta.get(ANNOTATION)
    return value in (getattr(annotation, "input_qspec_map", None) or {})


def _zero_fill(node: Node) -> bool:
    return node.op == "call_function" and node.target in ZERO_FILLS


def _move(node: Node) -> bool:
    """A move op; a constant pad only with zeros (another value could fall outside the scale's range)."""
    if node.op != "call_function" or node.target not in MOVES:
        return False
    return node.target is not _aten.constant_pad_nd.default or not (node.args[2:] and node.args[2])


def _next_move(node: Node) -> Node | None:
    """The one move op that consumes ``node`` (its other tensor inputs zero fills, or the indices
    of a gather), if any."""
    users = [u for u in node.users if not _zero_fill(u)]
    if len(users) != 1 or not _move(users[0]):
        return None
    user = users[0]
    indices = user.args[2] if user.target is _aten.index_select.default else None
    others = [a for a in user.all_input_nodes if a is not node and a is not indices]
    return user if all(_zero_fill(a) for a in others) else None


def _chain_from(start: Node) -> list[Node]:
    chain = [start]
    while (step := _next_move(chain[-1])) is not None:
        chain.append(step)
    return chain


def annotate_moves(model: GraphModule, annotation: Callable[..., Any], skip: Callable[[Node], bool]) -> int:
    """Mark every chain of move ops that can stay int8 (see the module docstring); returns how many.

    ``annotation(**fields)`` builds the quantizer's annotation object; ``skip(node)`` says a node
    belongs to a module the user keeps in float.
    """
    from torchao.quantization.pt2e.quantizer import SharedQuantizationSpec

    count = 0
    for start in list(model.graph.nodes):
        if not _move(start) or start.target is _aten.cat.default:
            continue
        source = start.args[0]
        if not isinstance(source, Node) or _move(source):
            continue  # not the head of a chain
        chain = _chain_from(start)
        end = chain[-1]
        sharer = next((u for u in source.users if u is not start and _wants_int8(u, source)), None)
        if (sharer is None or not end.users or not all(_wants_int8(u, end) for u in end.users)
                or any(ANNOTATION in n.meta or skip(n) for n in chain)):
            continue
        start.meta[ANNOTATION] = annotation(input_qspec_map={source: SharedQuantizationSpec((source, sharer))},
                                            _annotated=True)
        end.meta[ANNOTATION] = annotation(output_qspec=SharedQuantizationSpec((source, start)), _annotated=True,
                                          _is_output_of_quantized_pattern=True)
        count += 1
    return count
