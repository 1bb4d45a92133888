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


def feature_stages(model: nn.Module, role: str) -> dict[int, str]:
    """The model's feature stages as it declares them (timm's ``feature_info``: a module and how many
    times smaller than the input its output is), by that reduction, under whichever submodule holds
    them; the first entry (the stem) left out, and of two stages at one reduction, the deeper."""
    for prefix, module in unwrap(model).named_modules():
        info = getattr(module, "feature_info", None)
        if isinstance(info, list) and len(info) > 1 and all(isinstance(i, dict) and {"module", "reduction"} <= i.keys()
                                                            for i in info):
            return {int(i["reduction"]): ".".join(filter(None, (prefix, i["module"]))) for i in info[1:]}
    raise OptionError(f"the {role} declares no feature stages (timm models do, as feature_info), so `stages` "
                      "cannot choose its layers", "name the layers instead, e.g. [net.layer2, net.layer3]")


def paired_stages(student: nn.Module, teacher: nn.Module) -> tuple[list[str], list[str]]:
    """(student layers, teacher layers): the stages of each at every reduction both have, shallow to deep."""
    s, t = feature_stages(student, "student"), feature_stages(teacher, "teacher")
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


def probe(model: nn.Module, names: list[str] | tuple[str, ...], role: str,
          input_shape: tuple[int, ...]) -> dict[str, Tensor]:
    """The named features on a dry forward of two zero images (eval mode, no autograd), to learn
    their shapes before training; the model's train/eval mode is restored."""
    model = unwrap(model)
    param = next(iter(model.parameters()), None)
    device = param.device if param is not None else torch.device("cpu")
    tap = FeatureTap(model, names, role)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), tap as feats:
            model(torch.zeros(2, *input_shape, device=device))
    finally:
        model.train(was_training)
    return {name: feats[name] for name in names}
