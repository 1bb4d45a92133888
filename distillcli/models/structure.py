"""Record and re-apply structural edits (pruned channel counts) without pickling modules.

A model file stores, for every layer whose shape can change, the constructor arguments it
has now. Loading builds the original architecture, rebuilds the layers whose recorded
arguments differ, then loads the state_dict. Only the layer types of ``_layer_table`` can be
rebuilt, so a file can never name a class to construct. A subclass of one of them (timm's
``BatchNormAct2d``, a padded ``Conv2dSame``) keeps its class and is resized in place: its size
attributes take the recorded values and its weights the matching shapes. Attention laid out as
timm's ``Attention`` records its head counts (``ATTENTION``): its layers are rebuilt as above and
its ints that count heads are set, so a model whose heads were pruned reshapes by the right count.
"""

from __future__ import annotations

import reprlib
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


def _layernorm_args(m: nn.LayerNorm) -> dict[str, Any]:
    return {"normalized_shape": list(m.normalized_shape), "eps": m.eps,
            "elementwise_affine": m.elementwise_affine, "bias": getattr(m, "bias", None) is not None}


# ---------------------------------------------------------------- attention heads
ATTENTION = "attention_heads"  # the record type of an attention module's head counts
HEAD_COUNTS = ("num_heads", "num_kv_heads")  # ints that count heads (timm's AttentionRope has both)
HEAD_WIDTHS = ("attn_dim", "kv_dim")  # ints that are heads x head_dim


def is_attention(m: nn.Module) -> bool:
    """Whether ``m`` is laid out as timm's ``Attention``, so whole heads can be removed: a fused
    ``qkv`` Linear with outputs (3, num_heads, head_dim), a ``proj`` Linear reading attn_dim =
    num_heads x head_dim features, an optional ``gate`` Linear writing attn_dim and a ``norm`` over
    attn_dim that is absent, an Identity or a LayerNorm. Every head count equals ``num_heads`` (no
    grouped key/value heads), every width ``attn_dim``."""
    heads, head_dim, width = (getattr(m, k, None) for k in ("num_heads", "head_dim", "attn_dim"))
    qkv, proj, gate = (getattr(m, k, None) for k in ("qkv", "proj", "gate"))
    norm = getattr(m, "norm", None)
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (heads, head_dim, width)) \
            or not isinstance(qkv, nn.Linear) or not isinstance(proj, nn.Linear):
        return False
    ints = _head_ints(m)
    return (width == heads * head_dim and qkv.out_features == 3 * width and proj.in_features == width
            and all(ints[k] == heads for k in HEAD_COUNTS if k in ints)
            and all(ints[k] == width for k in HEAD_WIDTHS if k in ints)
            and (gate is None or isinstance(gate, nn.Linear) and gate.out_features == width)
            and (norm is None or isinstance(norm, nn.Identity)
                 or isinstance(norm, nn.LayerNorm) and tuple(norm.normalized_shape) == (width,)))


def _head_ints(m: nn.Module) -> dict[str, int]:
    return {k: v for k in HEAD_COUNTS + HEAD_WIDTHS if isinstance(v := getattr(m, k, None), int)}


def set_heads(m: nn.Module, heads: int) -> None:
    """Set the head counts (and widths) of an ``is_attention`` module; its layers are resized apart."""
    for key in _head_ints(m):
        setattr(m, key, heads if key in HEAD_COUNTS else heads * m.head_dim)


Layers = dict[str, tuple[type[nn.Module], Callable[[Any], dict[str, Any]]]]
_OWN: Layers = {}  # distill's own layers that pruning reshapes (see ``reshapeable``)


def reshapeable(cls: type[nn.Module]) -> type[nn.Module]:
    """Class decorator for a model's own layer whose shape pruning changes: its static method
    ``structure_args(module)`` gives the constructor arguments that rebuild it as it is now."""
    _OWN[cls.__name__] = (cls, getattr(cls, "structure_args"))
    return cls


def _layer_table() -> Layers:
    return {
        "Conv2d": (nn.Conv2d, _conv_args),
        "BatchNorm2d": (nn.BatchNorm2d, _bn_args),
        "Linear": (nn.Linear, _linear_args),
        "LayerNorm": (nn.LayerNorm, _layernorm_args),
        **_OWN,
    }


def capture_structure(model: nn.Module) -> dict[str, dict[str, Any]]:
    """{module name: {"type": ..., "args": {...}}} for every reshapeable layer."""
    table = _layer_table()
    out: dict[str, dict[str, Any]] = {}
    for name, module in model.named_modules():
        kind = next((k for k, (cls, _) in table.items() if isinstance(module, cls)), None)
        if kind is not None:
            out[name] = {"type": kind, "args": table[kind][1](module)}
        elif is_attention(module):
            out[name] = {"type": ATTENTION, "args": _head_ints(module)}
    return out


def apply_structure(model: nn.Module, structure: Any) -> nn.Module:
    """Rebuild, in place, each layer whose recorded arguments differ from the model's."""
    if not isinstance(structure, dict):
        raise ModelFileError("the model file's 'structure' is not a mapping of layer names to layers", _DAMAGED)
    table = _layer_table()
    current = capture_structure(model)
    for name, entry in structure.items():
        kind = entry.get("type") if isinstance(entry, dict) else None
        if not isinstance(name, str) or not isinstance(kind, str) or name not in current \
                or current[name]["type"] != kind:
            raise ModelFileError(
                f"the model file records a {_short(kind)} layer at {_short(name)} that its architecture does not have",
                "the file was written for another architecture or version; re-export it from the run that made it",
            )
        args = _checked_args(name, entry.get("args"), current[name]["args"])
        if current[name]["args"] == args:
            continue
        if kind == ATTENTION:
            _set_head_counts(name, model.get_submodule(name), args)
            continue
        if kind in ("Conv2d", "LayerNorm"):
            args = {k: tuple(v) if isinstance(v, list) else v for k, v in args.items()}
        current_layer = model.get_submodule(name)
        if type(current_layer) is not table[kind][0]:
            _resize(current_layer, args)
            continue
        try:
            layer = table[kind][0](**args)
        except (ValueError, TypeError, RuntimeError) as e:  # e.g. groups that do not divide the channels
            raise ModelFileError(f"the model file records arguments for layer {name!r} that do not make a "
                                 f"{kind} ({str(e).splitlines()[0][:120] if str(e) else type(e).__name__})",
                                 _DAMAGED) from None
        model.set_submodule(name, layer)
    return model


def _set_head_counts(name: str, attention: nn.Module, args: dict[str, int]) -> None:
    """Set the recorded head counts (checked like any layer's arguments); the widths must follow."""
    set_heads(attention, args["num_heads"])
    if _head_ints(attention) != args:
        raise ModelFileError(f"the model file records head counts {_short(args)} for {name!r} that do not "
                             f"agree with each other (head_dim {attention.head_dim})", _DAMAGED)


def _resize(layer: nn.Module, args: dict[str, Any]) -> None:
    """A subclass of a rebuildable layer, given its recorded size: the size attributes change and every
    weight is re-made (uninitialised) in the shape a fresh layer of those arguments would have."""
    base = next(cls for cls in type(layer).__mro__ if cls in (nn.Conv2d, nn.BatchNorm2d, nn.Linear, nn.LayerNorm))
    fresh = base(**args)
    for key in args:
        if hasattr(layer, key) and key != "bias":
            setattr(layer, key, getattr(fresh, key))
    for attr, value in list(fresh.named_parameters(recurse=False)) + list(fresh.named_buffers(recurse=False)):
        old = getattr(layer, attr, None)
        if isinstance(old, nn.Parameter):
            setattr(layer, attr, nn.Parameter(value.detach(), requires_grad=old.requires_grad))
        elif old is not None:
            setattr(layer, attr, value)


# ---------------------------------------------------------------- checks on what a file records
MAX_UNITS = 1 << 20  # channels, features, strides ... of one layer
_DAMAGED = "the file is damaged or was not written by distillcli; re-create it from the run or command that made it"


def _checked_args(name: str, args: Any, reference: dict[str, Any]) -> dict[str, Any]:
    """The recorded constructor arguments, with the same keys and kinds of value as the
    layer the architecture builds, and numbers in range (channel counts at least 1)."""
    if not isinstance(args, dict) or set(args) != set(reference):
        raise ModelFileError(f"the model file records arguments {_short(args)} for layer {name!r}; expected the keys "
                             f"{', '.join(reference)}", _DAMAGED)
    for key, value in args.items():
        if not _fits(key, value, reference[key]):
            raise ModelFileError(f"the model file records {key}={_short(value)} for layer {name!r}, which is out of "
                                 f"range or of the wrong type (the architecture has {reference[key]!r})", _DAMAGED)
    return args


def _fits(key: str, value: Any, like: Any) -> bool:
    low = 0 if key == "padding" else 1
    if isinstance(like, bool):
        return isinstance(value, bool)
    if isinstance(like, int):
        return isinstance(value, int) and not isinstance(value, bool) and low <= value <= MAX_UNITS
    if isinstance(like, float) or like is None:
        if value is None:
            return like is None or key == "momentum"
        return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= 1 \
            and value == value  # eps, momentum; value == value excludes NaN
    if isinstance(like, list):
        return isinstance(value, list) and len(value) == len(like) and all(_fits(key, v, like[0]) for v in value)
    return value == like


def _short(value: Any) -> str:
    text = reprlib.repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
