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
import pickle
import re
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from distillcli.atomic_write import atomic_path
from distillcli.errors import DistillError, ModelFileError
from distillcli.modelfile.header import DAMAGED_HINT, ModelFile, check_format, check_model_path, recorded_model
from distillcli.models.build import build_model
from distillcli.models.handle import ArchSpec, ModelHandle
from distillcli.models.structure import apply_structure, capture_structure
from distillcli.models.sources import architecture_only


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


def safe_torch_load(path: str | Path) -> Any:
    """torch.load that never runs code from the file and explains every failure."""
    path = Path(path)
    check_model_path(path)
    _check_expansion(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(e))
        if not found:  # text or junk that happens to start like a pickle
            raise ModelFileError(
                f"refused to load {path}: it is corrupt, not a PyTorch file, or holds objects other than tensors "
                f"and plain data ({(str(e).splitlines() or [''])[0][:120]})",
                "re-create or re-download the file; a partial copy is the usual cause",
            ) from None
        raise ModelFileError(
            f"refused to load {path}: it would import {found.group(1)}, and loading it could run code from the file",
            "only load files from a source you trust; re-save the weights as a plain state_dict "
            "(torch.save(model.state_dict(), path)) and load that instead",
        ) from None
    except Exception as e:  # empty, text, truncated or another format: torch.load fails in many ways
        first = (str(e).splitlines() or [""])[0][:160]
        first = first if isinstance(e, RuntimeError) and first else f"{type(e).__name__}: {first}".rstrip(": ")
        raise ModelFileError(
            f"cannot read {path}: the file is corrupt or not a PyTorch file ({first})",
            "re-create or re-download the file; a partial copy is the usual cause",
        ) from None


def _check_expansion(path: Path) -> None:
    """PyTorch writes uncompressed zip archives; a compressed one can expand a small file into
    gigabytes of tensors (a zip bomb), so refuse archives that declare far more than they hold."""
    try:
        if not zipfile.is_zipfile(path):
            return
        with zipfile.ZipFile(path) as archive:
            declared = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        return  # torch.load reports it
    if declared > 2 * path.stat().st_size + (16 << 20):
        raise ModelFileError(f"refused to load {path}: its compressed contents expand to {declared / 2**30:.1f} GiB",
                             "PyTorch writes uncompressed files; re-save it with torch.save")


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


def _fillable(key: str, model: nn.Module) -> bool:
    """Keys a foreign checkpoint may lack because they are derived, not learned."""
    if key.endswith("num_batches_tracked"):
        return True
    owner, _, buffer = key.rpartition(".")
    try:
        module = model.get_submodule(owner)
    except AttributeError:
        return False
    return buffer in getattr(module, "derived_buffers", ())


def _describe(keys: list[str], limit: int = 8) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f" ... (+{len(keys) - limit} more)" if len(keys) > limit else "")


def load_state(model: nn.Module, state: dict[str, torch.Tensor], source: str, allow_fill: bool = False) -> None:
    """load_state_dict with one message naming every missing, unexpected and wrong-shaped key."""
    own = model.state_dict()
    missing = [k for k in own if k not in state and not (allow_fill and _fillable(k, model))]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k} (file {tuple(state[k].shape)}, model {tuple(own[k].shape)})"
              for k in own if k in state and state[k].shape != own[k].shape]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"missing keys: {_describe(missing)}")
        if unexpected:
            parts.append(f"unexpected keys: {_describe(unexpected)}")
        if shapes:
            parts.append(f"wrong shapes: {_describe(shapes)}")
        raise ModelFileError(
            f"the weights in {source} do not fit the model: " + "; ".join(parts),
            "check the architecture (arch, depth, width, num_classes); for a foreign checkpoint set "
            "strip_prefix (e.g. 'module.') and key_map (e.g. {fc: linear}) so its names match",
        )
    merged = {k: state[k] if k in state else own[k] for k in own}
    model.load_state_dict(merged, strict=True)
