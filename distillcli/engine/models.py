"""Turn the recipe's teacher / student sections into models (ModelSpec -> ModelHandle)."""

from __future__ import annotations

import copy
from pathlib import Path

import torch

from distillcli.data import load_data
from distillcli.data.bundle import DataBundle
from distillcli.errors import ModelFileError, OptionError
from distillcli.modelfile import kind_suffixes, load_model
from distillcli.modelfile.eager import model_from_payload
from distillcli.models.weights import load_foreign_state, safe_torch_load
from distillcli.modelfile.header import is_model_payload
from distillcli.models.build import build_model
from distillcli.models.ensemble import ensemble_handle
from distillcli.models.handle import ArchSpec, ModelHandle
from distillcli.data.config import PretrainedInput
from distillcli.models.sources import pretrained_input


def _arch(spec, data: DataBundle) -> ArchSpec:
    mean = spec.mean if spec.mean is not None else data.mean
    std = spec.std if spec.std is not None else data.std
    return ArchSpec(name=spec.arch, num_classes=spec.num_classes or data.num_classes,
                    in_channels=data.input_shape[0], mean=list(mean), std=list(std), kwargs=dict(spec.args))


def recipe_data(recipe, device: torch.device) -> DataBundle:
    """The recipe's data as every engine entry point (a run, --dry-run, cache fill) loads it: photos
    take their defaults from the recipe's pretrained model (``pretrained_input_of``)."""
    return load_data(recipe.data, device=device, seed=recipe.seed, channels_last=recipe.channels_last,
                     pretrained=pretrained_input_of(recipe))


def pretrained_input_of(recipe) -> PretrainedInput | None:
    """How the recipe's first model (teachers first) whose source records its pretrained input (timm's
    ``pretrained_cfg``) expects images: what ``load_data`` gives datasets of photos; None without one."""
    for spec in (recipe.teacher, *(recipe.teachers or ()), recipe.student):
        found = pretrained_input(spec.arch) if spec is not None and spec.arch else None
        if found is not None:
            return found
    return None


def build_from_spec(spec, data: DataBundle) -> ModelHandle:
    """A teacher or a standalone student: from a model file, a foreign checkpoint, or fresh."""
    if spec.checkpoint:
        path = Path(spec.checkpoint).expanduser()
        if path.suffix in kind_suffixes():
            handle = load_model(path).handle
        else:
            payload = safe_torch_load(path)  # read once: it is either our model file or a plain checkpoint
            if not is_model_payload(payload):
                if not spec.arch:
                    raise ModelFileError(f"{path} is a plain checkpoint without an architecture",
                                         "add arch: NAME (e.g. arch: resnet56) next to checkpoint:")
                arch = _arch(spec, data)
                handle = ModelHandle(build_model(arch), arch)
                load_foreign_state(handle.module, payload, path, spec.strip_prefix, spec.key_map)
                return handle
            handle = model_from_payload(payload, path).handle
        _check_fits(handle, data, str(path))
        return handle
    arch = _arch(spec, data)
    return ModelHandle(build_model(arch), arch)


def build_teacher(recipe, data: DataBundle) -> ModelHandle | None:
    """The recipe's teacher: ``teacher:`` as it is, or the ensemble of ``teachers:``."""
    if not recipe.teachers:
        return build_from_spec(recipe.teacher, data) if recipe.teacher is not None else None
    members = []
    for i, spec in enumerate(recipe.teachers):
        member = build_from_spec(spec, data)
        if member.format != "eager":
            raise ModelFileError(f"teachers[{i}]: {spec.checkpoint} is a {member.format} model, and an ensemble of "
                                 "teachers is made of PyTorch models", "list the .pt file it was made from")
        members.append(member)
    return ensemble_handle(members, [spec.weight for spec in recipe.teachers], data)


def student_from_teacher(spec, teacher: ModelHandle, data: DataBundle) -> ModelHandle:
    """A copy of the teacher, or its first ``keep_blocks`` feature blocks with a new head."""
    if spec.keep_blocks is None:
        return ModelHandle(copy.deepcopy(teacher.module), teacher.arch, teacher.format, teacher.precision,
                           teacher.info.model_copy(deep=True))
    if teacher.format != "eager":
        raise OptionError("keep_blocks needs an ordinary (eager) teacher", "use a teacher before quantization")
    arch = ArchSpec(**{**teacher.arch.to_dict(), "keep_blocks": spec.keep_blocks,
                       "num_classes": spec.num_classes or teacher.arch.num_classes})
    net = teacher.module.net.truncated(spec.keep_blocks, arch.num_classes)
    from distillcli.models.classifier import ImageClassifier

    return ModelHandle(ImageClassifier(net, arch.mean, arch.std), arch)


def _check_fits(handle: ModelHandle, data: DataBundle, source: str) -> None:
    if handle.arch.in_channels != data.input_shape[0]:
        raise ModelFileError(f"{source} takes {handle.arch.in_channels}-channel images, the data has {data.input_shape[0]}",
                             "use data the model was trained on (see `distill eval` --data)")
    if handle.arch.num_classes != data.num_classes:
        raise ModelFileError(f"{source} predicts {handle.arch.num_classes} classes, the data has {data.num_classes}",
                             "use data the model was trained on, or a model for this dataset")


def source_file(checkpoint: str | None) -> Path | None:
    """The model file a model was loaded from (for its stored size), if it is one of ours."""
    if not checkpoint:
        return None
    path = Path(checkpoint).expanduser()
    return path if path.suffix in {".pt", *kind_suffixes()} else None
