"""Typed data options, as written under ``data:`` in a recipe.

Every number is bounded: a recipe (or a model file's recorded data options) must not be
able to ask for gigabytes of images or a million loader processes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

MAX_SAMPLES = 100_000_000
MAX_IMAGE_SIZE = 4096
MAX_CHANNELS = 64
MAX_SYNTHETIC_VALUES = 1 << 28  # synthetic images x channels x pixels (256 MiB as uint8)
LARGE_IMAGE = 64  # image files from this size on: random resized crops, and resize + centre crop to evaluate
MAX_AUTO_WORKERS, SMALL_SPLIT = 8, 1000  # workers: auto
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]
INTERPOLATIONS = ("bilinear", "bicubic", "nearest")
CROP_FRACTION = 0.875  # evaluation from LARGE_IMAGE px: the centre crop's share of the resized image

Count = Annotated[int, Field(ge=1, le=MAX_SAMPLES)]
# finite and bounded; a std's sign is checked where the dataset's channels are known (datasets.resolve_norm)
Norm = list[Annotated[float, Field(ge=-100, le=100, allow_inf_nan=False)]]


@dataclass(frozen=True)
class PretrainedInput:
    """How a model's pretrained weights expect images: what the data transforms default to."""

    mean: list[float]
    std: list[float]
    size: int  # square input side
    interpolation: str = "bilinear"  # resizing: bilinear | bicubic | nearest
    crop_fraction: float = CROP_FRACTION  # evaluation: the centre crop's share of the resized image


class DataConfig(BaseModel):
    """Which dataset to read and how to batch it."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field("digits", max_length=200, description="the dataset (`distill list datasets`)")
    root: str = Field("data", max_length=4096, description="folder the dataset lives in (or is downloaded to)")
    download: bool = Field(False, description="download the dataset when it is missing (needs internet)")
    batch_size: int = Field(128, ge=1, le=65536)
    eval_batch_size: int = Field(256, ge=1, le=65536)
    workers: Annotated[int, Field(ge=0, le=256)] | Literal["auto"] = Field(
        "auto", description="processes that decode and augment images (image files only; in-memory data needs none); "
                            f"auto: min({MAX_AUTO_WORKERS}, cores - 1), or 0 for a split of fewer than "
                            f"{SMALL_SPLIT:,} images (starting workers would cost more than they save)")
    train_subset: Count | None = Field(None, description="use only the first N training samples")
    val_subset: Count | None = Field(None, description="use only the first N validation samples")
    val_split: Annotated[float, Field(gt=0, le=0.5)] | None = Field(
        None, description="hold out this share of the training samples (0 < share <= 0.5; class-stratified, fixed "
                          "by the seed) to choose on per epoch; the validation/test split then only measures "
                          "final models")
    val_from: Literal["train", "test"] = Field(
        "train", description="where val_split's share comes from: train (held out of the training data), or test "
                             "(the same share of the test split for every seed, for a start model that saw all the "
                             "training data; the test measures then use the rest)")
    augment: Literal["auto", "standard", "crop", "none"] = Field(
        "auto", description="standard: random crop + horizontal flip; crop: crop only; auto: the dataset's default. "
                            f"Images below {LARGE_IMAGE} px get a pad-4 crop, image files at {LARGE_IMAGE} px and "
                            "more a random resized crop (scale 0.08-1)")
    augment_replay: Annotated[int, Field(ge=1, le=100_000)] | None = Field(
        None, description="training epoch e reuses the augmentation of epoch e mod K (the order still changes), "
                          "so a stored teacher's outputs are computed for K epochs at most")
    image_size: Annotated[int, Field(ge=1, le=MAX_IMAGE_SIZE)] | None = Field(
        None, description=f"resize images to this size, at most {MAX_IMAGE_SIZE} (default: the dataset's; for "
                          "image files the input size of the recipe's timm model's pretrained_cfg, else 32)")
    interpolation: Literal[INTERPOLATIONS] | None = Field(  # type: ignore[valid-type]
        None, description="image files: how images are resized (default: the recipe's timm model's pretrained_cfg, "
                          "else bilinear)")
    crop_fraction: Annotated[float, Field(ge=0.5, le=1.0)] | None = Field(
        None, description=f"image files from {LARGE_IMAGE} px: evaluation resizes to image_size / crop_fraction, then "
                          f"centre-crops (default: the timm model's crop_pct, else {CROP_FRACTION})")
    mean: Norm | None = Field(None, min_length=1, max_length=MAX_CHANNELS,
                              description="normalisation mean per channel (default: the dataset's; for image files "
                                          "the pretrained_cfg of the recipe's timm model, else ImageNet's)")
    std: Norm | None = Field(None, min_length=1, max_length=MAX_CHANNELS,
                              description="normalisation std per channel (default: the dataset's)")
    train_list: str | None = Field(None, max_length=4096, description="csv only: the training list under data.root "
                                   "(default train.csv): one `path,label` line per image, path relative to data.root")
    val_list: str | None = Field(None, max_length=4096, description="csv only: the validation list under data.root "
                                 "(default val.csv)")
    # synthetic only
    num_classes: Annotated[int, Field(ge=1, le=100_000)] | None = Field(None, description="synthetic only: number "
                                                                                           "of classes")
    channels: Annotated[int, Field(ge=1, le=MAX_CHANNELS)] | None = Field(None, description="synthetic only: image "
                                                                                             "channels")
    train_size: Count | None = Field(None, description="synthetic only: training samples")
    val_size: Count | None = Field(None, description="synthetic only: validation samples")

    @model_validator(mode="after")
    def _val_from_needs_a_share(self) -> "DataConfig":
        if self.val_from == "test" and self.val_split is None:
            raise ValueError("val_from: test holds out data.val_split of the test split; set val_split, e.g. 0.5")
        return self

    @model_validator(mode="after")
    def _synthetic_fits(self) -> "DataConfig":
        """The synthetic set is made in memory at once: bound its total size, not just each factor."""
        if self.name == "synthetic":
            images = (self.train_size or 512) + (self.val_size or 128)
            values = images * (self.channels or 3) * (self.image_size or 32) ** 2
            if values > MAX_SYNTHETIC_VALUES:
                raise ValueError(f"synthetic data of {images} images of {self.channels or 3}x{self.image_size or 32}"
                                 f"x{self.image_size or 32} is {values / 2**20:.0f} MiB; the limit is 256 MiB "
                                 "(lower train_size, val_size or image_size)")
        return self
