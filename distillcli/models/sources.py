"""Where a model comes from, by the prefix of its ``arch:`` (torch-free).

    resnet56                       a built-in model (``models.registry``)
    torchvision:<name>             a torchvision classifier; ``weights: DEFAULT`` or a local .pth
    timm:<name>                    a timm model; ``pretrained: true`` or a local checkpoint
    py:<file.py or module>:<fn>    your own code: ``fn(**args)`` returns the nn.Module

Each source is one entry; its builder, ``build(name, num_classes, in_channels, **args)``, is
imported when a model is built. A ``py:`` model runs the user's code, so it builds only inside
``trusting_code()``: the CLI enters it for ``--trust-code`` (or ``trust_code: true`` in a recipe),
once per run and again for every load of a file made from such a model.
"""

from __future__ import annotations

import contextlib
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Iterator

from pydantic import ConfigDict, Field

from distillcli.data.config import PretrainedInput
from distillcli.errors import DistillError, OptionError, UnknownNameError
from distillcli.models.registry import MODELS, ModelOptions
from distillcli.registry import Entry, Registry, closest, matching


class TorchvisionOptions(ModelOptions):
    weights: str | None = Field(None, description="DEFAULT: torchvision's pretrained weights (downloaded once to "
                                                  "the torch hub cache); or the path of a .pth state_dict of the "
                                                  "unmodified torchvision model (works offline)")
    pretrained: bool = Field(False, description="the same as weights: DEFAULT")


class TimmOptions(ModelOptions):
    """Any other key goes to ``timm.create_model`` (e.g. ``img_size: 64`` for a ViT, ``drop_rate``)."""

    model_config = ConfigDict(extra="allow")

    pretrained: bool | str = Field(False, description="true: timm's pretrained weights (downloaded once to the "
                                                      "Hugging Face cache); or the path of a local checkpoint of "
                                                      "this model (.pth, .bin or .safetensors; works offline)")


class PyOptions(ModelOptions):
    """Any keyword arguments of the user's callable."""

    model_config = ConfigDict(extra="allow")


@dataclass(frozen=True, kw_only=True)
class SourceEntry(Entry):
    options: type[ModelOptions] = ModelOptions
    names: str | None = None  # "module:function" listing the source's model names without torch; None: any
    runs_user_code: bool = False  # building imports code the user names: only with their consent
    weight_options: tuple[str, ...] = ()  # options that only fetch weights (dropped where a file holds them)
    pretrained_input: str | None = None  # "module:function": name -> the PretrainedInput its weights expect, or None


SOURCES: Registry[SourceEntry] = Registry("model source", SourceEntry, [
    SourceEntry(name="torchvision", target="distillcli.models.torchvision_adapter:build_torchvision",
                options=TorchvisionOptions, names="distillcli.models.package_names:torchvision_names",
                weight_options=("weights", "pretrained"), summary="torchvision's image classifiers"),
    SourceEntry(name="timm", target="distillcli.models.timm_source:build_timm", options=TimmOptions,
                names="distillcli.models.package_names:timm_names", weight_options=("pretrained",),
                pretrained_input="distillcli.models.timm_source:pretrained_input",
                summary="PyTorch Image Models (timm)"),
    SourceEntry(name="py", target="distillcli.models.user_code:build_user_model", options=PyOptions,
                runs_user_code=True, summary="your own code: py:<file.py or module>:<callable>"),
], group="distillcli.model_sources")


class ConsentError(DistillError):
    """Building the model would run code from outside distill, and the user has not allowed it."""


_trusted: ContextVar[bool] = ContextVar("distill_trust_code", default=False)


@contextlib.contextmanager
def trusting_code(allowed: bool = True) -> Iterator[None]:
    """Within this block, ``py:`` models may import and run the user's code (when ``allowed``)."""
    token = _trusted.set(allowed or _trusted.get())
    try:
        yield
    finally:
        _trusted.reset(token)


def require_consent(arch: str) -> None:
    if not _trusted.get():
        raise ConsentError(f"model {arch!r} is built by your own code, and running it needs your consent",
                           "add --trust-code to the command (or trust_code: true to the recipe) if you trust that "
                           "code")


def split_arch(arch: str) -> tuple[SourceEntry | None, str]:
    """(its source, the name within it); a built-in model has no source."""
    prefix, sep, rest = arch.partition(":")
    if not sep:
        return None, arch
    if prefix not in SOURCES:
        guess = closest(prefix, SOURCES.names())
        raise UnknownNameError(f"unknown model source {prefix!r} in {arch!r}",
                               f"did you mean '{guess}:{rest}'?" if guess else
                               f"write a built-in name or one of: {', '.join(s + ':<name>' for s in SOURCES.names())}")
    return SOURCES.get(prefix), rest


def pretrained_input(arch: str) -> PretrainedInput | None:
    """How the model's pretrained weights expect images, where its source records it (timm's
    ``pretrained_cfg``); None for other models."""
    source, name = split_arch(arch)
    if source is None or source.pretrained_input is None:
        return None
    return Entry(name=source.name, target=source.pretrained_input).load()(name)


def architecture_only(arch: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """``kwargs`` without the options that only fetch weights (a model file holds its own)."""
    source, _ = split_arch(arch)
    return {k: v for k, v in kwargs.items() if source is None or k not in source.weight_options}


def source_names(source: SourceEntry) -> list[str]:
    """The models ``source`` lists (empty for a source of any name, or a package that is not installed)."""
    if source.names is None:
        return []
    return Entry(name=source.name, target=source.names).load()()


def model_names(pattern: str = "*") -> list[str]:
    """Built-in models, then ``<source>:<name>`` of every source that lists its names."""
    sourced = [f"{s.name}:{n}" for s in SOURCES.entries() for n in source_names(s)]
    if pattern in MODELS or pattern in sourced:
        return [pattern]
    return MODELS.names(pattern) + matching(sourced, pattern)


def model_options(arch: str) -> type[ModelOptions]:
    """The ``args:`` model ``arch`` takes (an unknown name raises, with a did-you-mean)."""
    source, name = split_arch(arch)
    if source is None:
        try:
            return MODELS.get(name).options
        except UnknownNameError as exc:
            found = [f"{s.name}:{name}" for s in SOURCES.entries() if name in source_names(s)]
            raise UnknownNameError(exc.message, f"did you mean {' or '.join(map(repr, found))}?" if found else
                                   exc.hint) from None
    if not name:
        raise OptionError(f"arch {arch!r} names no model", f"write {source.name}:<name>")
    known = source_names(source)
    if source.names is not None and name not in known:
        guess = closest(name, known)
        listing = f"`distill list models '{source.name}:*'` lists them" if known else \
            f"install it: pip install {source.name}"
        raise UnknownNameError(f"unknown {source.name} model {name!r}",
                               f"did you mean '{source.name}:{guess}'?" if guess else listing)
    return source.options


def check_arch_args(arch: str, kwargs: dict[str, Any]) -> None:
    """Raise what building model ``arch`` with options ``kwargs`` would raise for an unknown name or key."""
    options = model_options(arch)
    if options.model_config.get("extra") == "allow":
        return
    valid = list(options.model_fields)
    for key in kwargs:
        if key not in valid:
            guess = closest(key, valid)
            listing = f"valid options: {', '.join(valid)}" if valid else "this model takes no options"
            raise OptionError(f"model {arch!r} has no option {key!r}",
                              f"did you mean {guess!r}? ({listing})" if guess else listing)
