"""The built-in models by name (torch-free): what ``arch: resnet20`` means, which ``args:`` each
takes, and where its factory lives. A factory is
``factory(num_classes: int = 10, in_channels: int = 3, **options) -> nn.Module``; an entry's
``fixed`` options are passed with the user's (``resnet56`` is ``cifar_resnet`` with depth 56).
Models from elsewhere (torchvision, timm, a user's own code) come through ``models.sources``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Literal

from pydantic import BaseModel, ConfigDict, Field

from distillcli.models.plans import cnn_params, mobilenetv2_params, resnet_params, vgg_params
from distillcli.registry import Entry, Registry


class ModelOptions(BaseModel):
    """A model's ``args:``. The factory checks the values; these say which keys exist and mean what."""

    model_config = ConfigDict(extra="forbid")


class WidthOptions(ModelOptions):
    width: float = Field(1.0, description="channel multiplier (0.5: half the channels)")


class ResNetOptions(WidthOptions):
    shortcut: Literal["A", "B"] = Field("A", description="A: parameter-free zero padding (the paper's CIFAR "
                                                         "choice); B: 1x1 convolution + BatchNorm")


class AnyDepthResNetOptions(ModelOptions):
    depth: int = Field(20, description="6n + 2: 8, 14, 20, 32, 44, 56, 110 ...")
    width: float = Field(1.0, description="channel multiplier (0.5: half the channels)")
    shortcut: Literal["A", "B"] = Field("A", description="A: zero padding; B: 1x1 convolution + BatchNorm")


class CNNOptions(ModelOptions):
    width: int = Field(32, description="channels of the first convolution (doubled per block)")
    depth: int = Field(3, description="convolution blocks")


@dataclass(frozen=True, kw_only=True)
class ModelEntry(Entry):
    options: type[ModelOptions] = ModelOptions
    fixed: dict[str, Any] = field(default_factory=dict)  # options this name sets (resnet56: depth 56)
    # torch-free parameter count: counter(num_classes, in_channels, **options); None: unknown until built
    params: Callable[..., int] | None = None


_RESNET = "distillcli.models.cifar_resnet:cifar_resnet"
_VGG = "distillcli.models.cifar_vgg:cifar_vgg"

MODELS: Registry[ModelEntry] = Registry("model", ModelEntry, [
    ModelEntry(name="cifar_resnet", target=_RESNET, options=AnyDepthResNetOptions, params=resnet_params,
               summary="CIFAR ResNet of any depth 6n+2 (He et al. 2016)"),
    *(ModelEntry(name=f"resnet{d}", target=_RESNET, options=ResNetOptions, fixed={"depth": d}, params=resnet_params,
                 summary=f"CIFAR ResNet-{d} ({(d - 2) // 6} blocks per stage)") for d in (8, 14, 20, 32, 44, 56, 110)),
    *(ModelEntry(name=f"vgg{d}_bn", target=_VGG, options=WidthOptions, fixed={"depth": d}, params=vgg_params,
                 summary=f"VGG-{d} with BatchNorm, CIFAR variant") for d in (11, 13, 16, 19)),
    ModelEntry(name="mobilenetv2", target="distillcli.models.mobilenet:mobilenetv2", options=WidthOptions,
               params=mobilenetv2_params,
               summary="MobileNetV2, CIFAR variant (stride 1 stem)"),
    ModelEntry(name="cnn", target="distillcli.models.small_cnn:cnn", options=CNNOptions, params=cnn_params,
               summary="a small plain CNN (conv-BN-ReLU blocks)"),
], group="distillcli.models")
