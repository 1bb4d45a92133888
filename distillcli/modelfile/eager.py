"""The eager model file (``.pt``): header + per-layer structure + state_dict, loadable with
``torch.load(weights_only=True)``, so reading one never runs code from it. ``structure``
holds the constructor arguments of layers that compression changed (pruned channel
counts, see models.structure), so a pruned model rebuilds without the script that made it.
"""

from __future__ import annotations

import copy
import dataclasses
import io
import json
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from distillcli.atomic_write import atomic_path
from distillcli.errors import DistillError, ModelFileError
from distillcli.modelfile.header import DAMAGED_HINT, ModelFile, check_format, recorded_model
from distillcli.models.build import build_model
from distillcli.models.handle import ArchSpec, ModelHandle
from distillcli.models.structure import apply_structure, capture_structure
from distillcli.models.sources import architecture_only
from distillcli.models.weights import load_state, safe_torch_load


def save_eager(handle: ModelHandle, header: dict[str, Any], path: Path) -> None:
    payload = json.loads(json.dumps(header))  # plain, unshared objects: equal headers pickle to equal bytes
    payload["structure"] = capture_structure(handle.module)
    # compact copies: a view would save its whole storage, so equal models would give unequal files
    payload["state_dict"] = {k: v.detach().to("cpu").clone(memory_format=torch.contiguous_format)
                             for k, v in handle.module.state_dict().items()}
    buffer = io.BytesIO()  # torch.save reports a failed file write as a RuntimeError; a bytes write raises OSError
    torch.save(payload, buffer)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buffer.getvalue())


def load_eager(path: Path) -> ModelFile:
    return model_from_payload(safe_torch_load(path), path)


def model_from_payload(payload: Any, path: Path) -> ModelFile:
    """Rebuild a model from the already-read contents of a ``.pt`` model file.

    The model is first built on the ``meta`` device (no memory) and checked against the
    file's weights and input shape; only a model that fits them is built for real, so the
    shapes a file declares cannot make it allocate more than the weights it holds.
    """
    check_format(payload, path)
    state = _state_dict(payload.get("state_dict"), path)
    structure = payload.get("structure", {})
    arch = ArchSpec.from_dict(payload["arch"])
    # Models from a source (torchvision, timm, user code) may read tensor values while they build (not
    # possible on meta); their size is fixed by name, options, classes and channels, so they are built
    # for real and copied.
    real = _build(arch, path) if ":" in arch.name else None
    with torch.device("meta"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "copying into a meta parameter is a no-op": only the shapes matter here
        base = copy.deepcopy(real).to("meta") if real is not None else _build(arch, path)
        skeleton = _restructure(base, structure, path)
        load_state(skeleton, state, str(path))
        _check_runs(skeleton, tuple(payload["input_shape"]), path)
    model = _restructure(real if real is not None else _build(arch, path), structure, path)
    load_state(model, state, str(path))
    _check_gather_indices(model, path)
    model.eval()
    fmt, precision, facts = recorded_model(payload)
    handle = ModelHandle(model, arch, fmt, precision, facts)
    return ModelFile(handle, payload["class_names"], tuple(payload["input_shape"]), payload.get("data", {}),
                     payload.get("metrics", {}), payload.get("recipe", {}), path)


def _state_dict(state: Any, path: Path) -> dict[str, torch.Tensor]:
    if not isinstance(state, dict):
        raise ModelFileError(f"{path}: its state_dict is missing or is not a mapping of names to tensors", DAMAGED_HINT)
    for key, value in state.items():
        plain = (isinstance(value, torch.Tensor) and value.layout == torch.strided and value.device.type == "cpu"
                 and not value.is_quantized and not value.is_complex())
        if not isinstance(key, str) or not plain:
            raise ModelFileError(f"{path}: state_dict entry {str(key)[:80]!r} is not a plain CPU tensor", DAMAGED_HINT)
    return state


def _build(arch: ArchSpec, path: Path) -> nn.Module:
    """The architecture the file names; every failure is the file's."""
    try:  # the weights come from the file: never download any
        return build_model(dataclasses.replace(arch, kwargs=architecture_only(arch.name, arch.kwargs)))
    except DistillError as e:
        raise ModelFileError(f"{path}: its model cannot be built: {e.message}", e.hint or DAMAGED_HINT) from None
    except (TypeError, ValueError, RuntimeError, OverflowError, AttributeError, IndexError, KeyError) as e:
        first = (str(e).splitlines() or [""])[0][:160]
        raise ModelFileError(f"{path}: its model cannot be built ({type(e).__name__}: {first})", DAMAGED_HINT) from None


def _restructure(model: nn.Module, structure: Any, path: Path) -> nn.Module:
    try:
        return apply_structure(model, structure)
    except ModelFileError as e:
        raise ModelFileError(f"{path}: {e.message}", e.hint) from None


def _check_runs(skeleton: nn.Module, input_shape: tuple[int, ...], path: Path) -> None:
    """A forward pass on the meta device: shapes only, no memory. Catches layers whose recorded
    channel counts do not fit together, which would otherwise fail only when evaluated."""
    try:
        with torch.no_grad():
            skeleton.eval()(torch.empty(1, *input_shape))
    except NotImplementedError:
        return  # an operator without a meta kernel: cannot check here
    except (RuntimeError, ValueError, IndexError, TypeError) as e:
        first = (str(e).splitlines() or [""])[0][:200]
        raise ModelFileError(f"{path}: its layers do not fit together or its input shape {list(input_shape)} "
                             f"({first})", DAMAGED_HINT) from None


def _check_gather_indices(model: nn.Module, path: Path) -> None:
    """Zero-padding shortcuts index their input channels with a buffer from the file."""
    for name, module in model.named_modules():
        index = getattr(module, "gather_index", None)
        channels = getattr(module, "in_channels", None)
        if isinstance(index, torch.Tensor) and isinstance(channels, int) and index.numel():
            if index.is_floating_point() or int(index.min()) < 0 or int(index.max()) > channels:
                raise ModelFileError(f"{path}: {name}.gather_index holds channel indices outside 0..{channels}",
                                     DAMAGED_HINT)


