"""Record and re-apply structural edits (pruned channel counts) without pickling modules.

A model file stores, for every layer whose shape can change, the constructor arguments it
has now. Loading builds the original architecture, rebuilds the layers whose recorded
arguments differ, then loads the state_dict. Only the layer types in ``_LAYERS`` can be
rebuilt, so a file can never name a class to construct.
"""

from __future__ import annotations

from typing import Any, Callable

from torch import nn

from distillcli.errors import ModelFileError


def _conv_args(m: nn.Conv2d) -> dict[str, Any]:
    return {
        "in_channels": m.in_channels, "out_channels": m.out_channels,
        "kernel_size": list(m.kernel_size), "stride": list(m.stride), "padding": list(m.padding),
        "dilation": list(m.dilation), "groups": m.groups, "bias": m.bias is not None,
    }


def _bn_args(m: nn.BatchNorm2d) -> dict[str, Any]:
    return {"num_features": m.num_features, "eps": m.eps, "momentum": m.momentum,
            "affine": m.affine, "track_running_stats": m.track_running_stats}


def _linear_args(m: nn.Linear) -> dict[str, Any]:
    return {"in_features": m.in_features, "out_features": m.out_features, "bias": m.bias is not None}


def _layer_table() -> dict[str, tuple[type[nn.Module], Callable[[Any], dict[str, Any]]]]:
    from distillcli.models.cifar_resnet import ZeroPadShortcut

    return {
        "Conv2d": (nn.Conv2d, _conv_args),
        "BatchNorm2d": (nn.BatchNorm2d, _bn_args),
        "Linear": (nn.Linear, _linear_args),
        "ZeroPadShortcut": (ZeroPadShortcut, ZeroPadShortcut.structure_args),
    }


def capture_structure(model: nn.Module) -> dict[str, dict[str, Any]]:
    """{module name: {"type": ..., "args": {...}}} for every reshapeable layer."""
    table = _layer_table()
    out: dict[str, dict[str, Any]] = {}
    for name, module in model.named_modules():
        kind = type(module).__name__
        if kind in table and type(module) is table[kind][0]:
            out[name] = {"type": kind, "args": table[kind][1](module)}
    return out


def apply_structure(model: nn.Module, structure: dict[str, dict[str, Any]]) -> nn.Module:
    """Rebuild, in place, each layer whose recorded arguments differ from the model's."""
    table = _layer_table()
    current = capture_structure(model)
    for name, entry in structure.items():
        kind = entry.get("type")
        if kind not in table or name not in current or current[name]["type"] != kind:
            raise ModelFileError(
                f"the model file records a {kind!r} layer at {name!r} that its architecture does not have",
                "the file was written for another architecture or version; re-export it from the run that made it",
            )
        if current[name]["args"] == entry["args"]:
            continue
        cls = table[kind][0]
        args = dict(entry["args"])
        if kind == "Conv2d":
            args = {k: tuple(v) if isinstance(v, list) else v for k, v in args.items()}
        model.set_submodule(name, cls(**args))
    return model
