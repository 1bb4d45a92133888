"""Reading intermediate features by module name, with forward hooks, in any model.

Feature methods (FitNets, attention transfer) name layers as ``model.named_modules()`` does
(``net.layer3`` in an ImageClassifier). Hooks live only for the duration of one forward pass
(``FeatureTap`` is a context manager), so nothing lingers on the model that is saved, traced or
exported afterwards; a DDP-wrapped student is unwrapped to reach its named modules.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from distillcli.errors import OptionError
from distillcli.registry import closest

_SHOWN = 24


def unwrap(model: nn.Module) -> nn.Module:
    """The module itself under DistributedDataParallel / DataParallel."""
    wrappers = (nn.parallel.DistributedDataParallel, nn.DataParallel)
    return model.module if isinstance(model, wrappers) else model


def layer_names(model: nn.Module) -> list[str]:
    return [name for name, _ in unwrap(model).named_modules() if name]


def find_layer(model: nn.Module, name: str, role: str) -> nn.Module:
    """The submodule called ``name``; an OptionError listing the valid names (closest first) if none."""
    model = unwrap(model)
    try:
        return model.get_submodule(name)
    except AttributeError:
        pass
    names = layer_names(model)
    guess = closest(name, names)
    ordered = ([guess] if guess else []) + [n for n in names if n != guess]
    more = f" ... and {len(ordered) - _SHOWN} more" if len(ordered) > _SHOWN else ""
    lead = f"did you mean {guess!r}? " if guess else ""
    raise OptionError(f"the {role} has no layer {name!r}; {lead}its layers: {', '.join(ordered[:_SHOWN])}{more}",
                      "name a layer as the model's named_modules() lists it (e.g. net.layer3)")


def feature_stages(model: nn.Module, role: str, input_shape: tuple[int, ...]) -> dict[int, str]:
    """The model's feature stages by how many times smaller than the input their output is. As it
    declares them (timm's ``feature_info``, under whichever submodule holds it; the first entry, the
    stem, left out), else as a dry forward shows them: at each reduction, the module that finishes
    last with a feature map that size (a ResNet's layerN; in a VGG the ReLU before each max-pool).
    Of two declared stages at one reduction, the deeper."""
    for prefix, module in unwrap(model).named_modules():
        info = getattr(module, "feature_info", None)
        if isinstance(info, list) and len(info) > 1 and all(isinstance(i, dict) and {"module", "reduction"} <= i.keys()
                                                            for i in info):
            return {int(i["reduction"]): ".".join(filter(None, (prefix, i["module"]))) for i in info[1:]}
    found = _observed_stages(unwrap(model), input_shape)
    if not found:
        raise OptionError(f"the {role} gives no feature maps (N, C, H, W) after a convolution, so `stages` "
                          "cannot choose its layers", "name the layers instead, e.g. [net.layer2, net.layer3]")
    return found


_POOLS = (nn.modules.pooling._MaxPoolNd, nn.modules.pooling._AvgPoolNd, nn.modules.pooling._AdaptiveAvgPoolNd,
          nn.modules.pooling._AdaptiveMaxPoolNd)


def _observed_stages(model: nn.Module, input_shape: tuple[int, ...]) -> dict[int, str]:
    """Reduction -> the last module to finish with a feature map of that size on a dry forward,
    from the first convolution on. Left out: global pooling's 1x1 maps and pools that resize a map
    up (torchvision's VGG), modules called twice (a shared ReLU), and the parts of a block that
    halves the map with a strided convolution (an inverted residual's expansion, a bottleneck's
    first 1x1): the stage's output is the block's input. Inside a block that halves it by pooling,
    the map just before the pool is the stage's."""
    sizes: dict[str, list[Any]] = {}  # name -> [input size, output size, calls]
    finished: list[str] = []
    seen_conv = False

    def size(x: Any) -> tuple[int, int] | None:
        x = x[0] if isinstance(x, (tuple, list)) and x else x
        return tuple(x.shape[-2:]) if isinstance(x, Tensor) and x.dim() == 4 else None  # type: ignore[return-value]

    def before(name: str) -> Any:
        def hook(_: nn.Module, args: Any) -> None:
            sizes.setdefault(name, [size(args), None, 0])
        return hook

    def after(name: str, module: nn.Module) -> Any:
        def hook(_: nn.Module, args: Any, output: Any) -> None:
            nonlocal seen_conv
            seen_conv = seen_conv or isinstance(module, nn.modules.conv._ConvNd)
            entry = sizes[name]
            entry[1], entry[2] = size(output), entry[2] + 1
            grew = entry[0] is not None and entry[1] is not None and entry[1][0] > entry[0][0]  # resized up
            if seen_conv and entry[1] is not None and entry[1][0] * entry[1][1] > 1 and not grew:
                finished.append(name)
        return hook

    modules = {name: m for name, m in model.named_modules() if name}
    handles = [h for name, m in modules.items()
               for h in (m.register_forward_pre_hook(before(name)), m.register_forward_hook(after(name, m)))]
    try:
        dry_forward(model, input_shape)
    finally:
        for handle in handles:
            handle.remove()

    def halves(name: str) -> bool:
        (i, o) = sizes[name][:2] if name in sizes else (None, None)
        return i is not None and o is not None and o[0] < i[0] <= 2 * o[0]

    inside: list[str] = []  # blocks that halve the map with a convolution: their parts are not stages
    for name in modules:
        leaves = [n for n in modules if (n == name or n.startswith(name + ".")) and not any(modules[n].children())
                  and halves(n)]
        if halves(name) and leaves and not all(isinstance(modules[n], _POOLS) for n in leaves):
            inside.append(name + ".")
    height = input_shape[-2]
    return {max(1, round(height / sizes[name][1][0])): name for name in finished
            if sizes[name][2] == 1 and not any(name.startswith(block) for block in inside)}


def paired_stages(student: nn.Module, teacher: nn.Module, input_shape: tuple[int, ...]) -> tuple[list[str], list[str]]:
    """(student layers, teacher layers): the stages of each at every reduction both have, shallow to deep."""
    s, t = feature_stages(student, "student", input_shape), feature_stages(teacher, "teacher", input_shape)
    common = sorted(s.keys() & t.keys())
    if not common:
        raise OptionError(f"the student's stages (reductions {sorted(s)}) and the teacher's ({sorted(t)}) share no "
                          "reduction of the input size", "name the layers to pair instead")
    return [s[r] for r in common], [t[r] for r in common]


class FeatureTap:
    """``with FeatureTap(model, names, role) as feats: model(x)`` fills ``feats[name]`` with each
    named module's output; the hooks are removed on exit, even if the forward fails."""

    def __init__(self, model: nn.Module, names: list[str] | tuple[str, ...], role: str) -> None:
        self.modules = {name: find_layer(model, name, role) for name in dict.fromkeys(names)}
        self.feats: dict[str, Tensor] = {}
        self._handles: list[Any] = []

    def __enter__(self) -> dict[str, Tensor]:
        self.feats = {}
        for name, module in self.modules.items():
            self._handles.append(module.register_forward_hook(self._keep(name)))
        return self.feats

    def __exit__(self, *exc: object) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def _keep(self, name: str) -> Any:
        def hook(module: nn.Module, args: Any, output: Any) -> None:
            self.feats[name] = output[0] if isinstance(output, (tuple, list)) else output
        return hook


def dry_forward(model: nn.Module, input_shape: tuple[int, ...]) -> None:
    """One forward pass of two zero images (eval mode, no autograd) on the model's device, its
    train/eval mode restored: how hooks learn feature shapes before training."""
    param = next(iter(model.parameters()), None)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(2, *input_shape, device=param.device if param is not None else "cpu"))
    finally:
        model.train(was_training)


def probe(model: nn.Module, names: list[str] | tuple[str, ...], role: str,
          input_shape: tuple[int, ...]) -> dict[str, Tensor]:
    """The named features on a dry forward, to learn their shapes before training."""
    model = unwrap(model)
    with FeatureTap(model, names, role) as feats:
        dry_forward(model, input_shape)
    return {name: feats[name] for name in names}
