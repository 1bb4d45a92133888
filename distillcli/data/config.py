"""Typed data options, as written under ``data:`` in a recipe."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveInt


class DataConfig(BaseModel):
    """Which dataset to read and how to batch it."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field("digits", description="cifar10 | cifar100 | imagefolder | digits | synthetic")
    root: str = Field("data", description="folder the dataset lives in (or is downloaded to)")
    download: bool = Field(False, description="download the dataset when it is missing (needs internet)")
    batch_size: PositiveInt = 128
    eval_batch_size: PositiveInt = 256
    workers: int = Field(0, ge=0, description="loader worker processes (imagefolder only; in-memory data needs none)")
    train_subset: PositiveInt | None = Field(None, description="use only the first N training samples")
    val_subset: PositiveInt | None = Field(None, description="use only the first N validation samples")
    augment: Literal["auto", "standard", "crop", "none"] = Field(
        "auto", description="standard: pad-4 random crop + horizontal flip; crop: crop only; auto: the dataset's default"
    )
    image_size: PositiveInt | None = Field(None, description="resize images to this size (digits, imagefolder, synthetic)")
    mean: list[float] | None = Field(None, description="normalisation mean per channel (default: the dataset's)")
    std: list[float] | None = Field(None, description="normalisation std per channel (default: the dataset's)")
    # synthetic only
    num_classes: PositiveInt | None = Field(None, description="synthetic only: number of classes")
    channels: PositiveInt | None = Field(None, description="synthetic only: image channels")
    train_size: PositiveInt | None = Field(None, description="synthetic only: training samples")
    val_size: PositiveInt | None = Field(None, description="synthetic only: validation samples")
