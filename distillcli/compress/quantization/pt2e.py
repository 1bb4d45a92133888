"""Int8 through PT2E: torch.export -> torchao's X86InductorQuantizer -> convert -> re-export.

This is the current PyTorch path for int8 on x86 CPUs (on arm64, torchao's ArmInductorQuantizer;
see ``quantization.target``): in torch 2.14.1 the older
``torch.ao.quantization`` flows (eager, FX) are deprecated, and ``quantize_pt2e`` moved to
``torchao.quantization.pt2e``. Weights are int8 per output channel (symmetric), activations
uint8 per tensor; static activation ranges come from a calibration set (histogram
observer), dynamic ones are computed per batch (Linear layers only), and QAT learns with
fake quantization (conv + BN folded as in deployment) before the same conversion.

The converted program still holds quantize / dequantize pairs around float ops; inductor
fuses them into int8 kernels when the program is compiled (see compress.export.program).
torchao is imported lazily: it costs ~3 s, which commands that do not quantize should not pay.
"""

from __future__ import annotations

from typing import Any, Iterable, Literal

import torch
from torch import Tensor, nn
from torch.fx import GraphModule

from distillcli.compress.export.program import export_program
from distillcli.quiet import quiet
from distillcli.compress.quantization.layers import ANNOTATION, check_coverage, in_modules, resolve_skip, weighted_layers
from distillcli.compress.quantization.moves import annotate_moves
from distillcli.compress.quantization.shared_calls import split_shared_activations
from distillcli.compress.quantization.target import int8_plan
from distillcli.errors import CompressionError

Scheme = Literal["static", "dynamic", "qat"]


def make_quantizer(scheme: Scheme, skipped: list[str], target: str = "auto") -> Any:
    """An inductor quantizer for ``scheme`` and the machine ``target`` names (``quantization.target``:
    x86 with reduce_range where there is no VNNI, ARM's on arm64) that leaves every op of the
    ``skipped`` modules in float (its own ``set_module_name_qconfig(name, None)`` misses a conv
    whose fused pattern reaches outside the module, e.g. conv -> bn -> add -> relu in a residual
    block) and, for static and QAT, keeps int8 through slicing / zero-padding shortcuts (see ``moves``)."""
    with quiet():
        from torchao.quantization.pt2e.quantizer import arm_inductor_quantizer as aiq
        from torchao.quantization.pt2e.quantizer import x86_inductor_quantizer as xiq

    names, plan = set(skipped), int8_plan(target)
    qat, dynamic = scheme == "qat", scheme == "dynamic"
    if plan.quantizer == "arm_inductor":
        base, mark = aiq.ArmInductorQuantizer, aiq._ArmInductorQuantizationAnnotation
        config = aiq.get_default_arm_inductor_quantization_config(is_qat=qat, is_dynamic=dynamic)
    else:
        base, mark = xiq.X86InductorQuantizer, xiq._X86InductorQuantizationAnnotation
        config = xiq.get_default_x86_inductor_quantization_config(is_qat=qat, is_dynamic=dynamic,
                                                                  reduce_range=plan.reduce_range)

    class OptOutQuantizer(base):  # type: ignore[misc,valid-type]
        def annotate(self, model: GraphModule) -> GraphModule:
            split_shared_activations(model)
            for node in model.graph.nodes:  # the quantizer's own "annotated, do not quantize" mark
                if node.op == "call_function" and in_modules(node, names):
                    node.meta[ANNOTATION] = mark(_annotated=True)
            model = super().annotate(model)
            if not dynamic:
                annotate_moves(model, mark, lambda node: in_modules(node, names))
            return model

    quantizer = OptOutQuantizer()
    if scheme == "dynamic":
        quantizer.set_module_type_qconfig(nn.Linear, config)
    else:
        quantizer.set_global(config)
    return quantizer


def as_base_layers(graph: GraphModule, model: nn.Module) -> None:
    """Record subclasses of nn.Linear (timm's ``Linear``, say) as nn.Linear in the graph's module
    stacks. A non-strict export names a node's module class by its dotted name, and the quantizer's
    linear annotation compares that name with nn.Linear's: a subclass would stay in float."""
    for node in graph.graph.nodes:
        stack = node.meta.get("nn_module_stack")
        if node.op != "call_function" or not stack:
            continue
        key, (path, _) = list(stack.items())[-1]
        try:
            layer = model.get_submodule(path)
        except AttributeError:
            continue
        if isinstance(layer, nn.Linear) and type(layer) is not nn.Linear:
            stack[key] = (path, nn.Linear)


def _wanted(model: nn.Module, scheme: Scheme) -> dict[str, str]:
    layers = weighted_layers(model)
    if scheme == "dynamic":
        layers = {n: k for n, k in layers.items() if isinstance(model.get_submodule(n), nn.Linear)}
        if not layers:
            raise CompressionError("dynamic int8 quantizes Linear layers, and this model has none",
                                   "use method: static (convolutions need calibrated int8)")
    return layers


def prepare(model: nn.Module, scheme: Scheme, example: Tensor, skip: Iterable[str] = (),
            target: str = "auto") -> GraphModule:
    """Capture ``model`` and insert observers (static, dynamic) or fake quantization (qat).

    Raises CompressionError naming any Conv/Linear-like layer that would silently stay in
    float, unless it matches a ``skip`` pattern. A dynamic model is ready to convert; a static
    one needs ``calibrate``; a QAT model trains, switching train/eval like a module. ``target``:
    the machine the int8 program is tuned for (see ``make_quantizer``).
    """
    skipped = resolve_skip(model, skip)
    wanted = _wanted(model, scheme)
    model.train(scheme == "qat")
    graph = export_program(model, example, strict=scheme == "qat").module()
    as_base_layers(graph, model)
    with quiet():
        from torchao.quantization.pt2e import allow_exported_model_train_eval
        from torchao.quantization.pt2e.quantize_pt2e import prepare_pt2e, prepare_qat_pt2e

        quantizer = make_quantizer(scheme, skipped, target)
        prepared = prepare_qat_pt2e(graph, quantizer) if scheme == "qat" else prepare_pt2e(graph, quantizer)
    check_coverage(prepared, wanted, skipped, scheme)
    if scheme == "dynamic":  # weight observers record the weights' ranges on a forward pass
        calibrate(prepared, [(example, example, example)], 1)
    if scheme == "qat":
        allow_exported_model_train_eval(prepared)
    return prepared


@torch.no_grad()
def calibrate(prepared: GraphModule, batches: Iterable[tuple[Tensor, Tensor, Tensor]], limit: int) -> int:
    """Run up to ``limit`` batches through the observers; returns the number of images seen."""
    device = next(iter(prepared.buffers()), torch.zeros(())).device
    seen = 0
    with quiet():
        for i, (images, _, _) in enumerate(batches):
            if i >= limit:
                break
            prepared(images.to(device))
            seen += images.shape[0]
    return seen


def _store_once(converted: GraphModule) -> None:
    """Drop the float weights convert_pt2e leaves behind (folded into int8 constants, no longer
    read) and keep the int8 weights as parameters, so a file holds each weight once and
    parameter counts see them."""
    used = {n.target for n in converted.graph.nodes if n.op == "get_attr"}
    for name, tensor in [*converted.named_parameters(), *converted.named_buffers()]:
        owner_name, _, attr = name.rpartition(".")
        owner = converted.get_submodule(owner_name)
        if name not in used:
            delattr(owner, attr)
        elif tensor.dtype == torch.int8 and not isinstance(tensor, nn.Parameter):
            delattr(owner, attr)
            owner.register_parameter(attr, nn.Parameter(tensor, requires_grad=False))


def convert(prepared: GraphModule, example: Tensor) -> torch.export.ExportedProgram:
    """Calibrated / trained model -> int8 program on the CPU with a dynamic batch dimension."""
    with quiet():
        from torchao.quantization.pt2e import move_exported_model_to_eval
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e

        move_exported_model_to_eval(prepared)
        converted = convert_pt2e(prepared.to("cpu"))
    _store_once(converted)
    return export_program(converted, example.to("cpu"))
