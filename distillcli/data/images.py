"""Image files: decoding and the transforms by size, run in the loader's worker processes.

Below ``LARGE_IMAGE`` px an image is resized (shorter side) and centre-cropped to a square, and
training augments whole batches with CIFAR's pad-4 crop and flip (``augment.crop_flip``). From
``LARGE_IMAGE`` px on, training takes a random resized crop (scale 0.08-1, aspect 3/4-4/3) and a
flip of each image, drawn from a generator the loader seeds from (seed, augmentation epoch, the
sample's position) alone; evaluation resizes to size / crop_fraction (256 for 224 at 0.875) and centre-crops; both
resize with ``data.interpolation``.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any, Callable

import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset, default_collate

from distillcli.data.config import CROP_FRACTION, LARGE_IMAGE
from distillcli.errors import DataError

SCALE, LOG_RATIO = (0.08, 1.0), (math.log(3 / 4), math.log(4 / 3))
SHOWN = 3  # unreadable files named in an error
# PIL reports a broken file as OSError (UnidentifiedImageError, truncated), SyntaxError (broken PNG) or ValueError
DECODE_ERRORS = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)

Transform = Callable[[Image.Image], Tensor]


@dataclass(frozen=True)
class Unreadable:
    """Yielded in place of an image that cannot be decoded: the loader raises one DataError for the
    batch in the main process (an error raised in a worker process would arrive as a traceback)."""

    path: str
    reason: str


def decode(path: str) -> Image.Image | Unreadable:
    """The image as RGB (grayscale, palette and RGBA images converted), or why it cannot be read."""
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except DECODE_ERRORS as err:
        return Unreadable(path, str(err) or type(err).__name__)


def collate(items: list[tuple[Any, int, int]]) -> Any:
    """``default_collate``, or the batch's unreadable files when it has any."""
    bad = [image for image, _, _ in items if isinstance(image, Unreadable)]
    return bad or default_collate(items)


def unreadable_error(bad: list[Unreadable]) -> DataError:
    hint = "delete or replace the file(s) (or take them out of the list file)"
    if len(bad) == 1:
        return DataError(f"cannot read image {bad[0].path}: {bad[0].reason}", hint)
    named = "; ".join(f"{b.path} ({b.reason})" for b in bad[:SHOWN])
    more = f" and {len(bad) - SHOWN} more" if len(bad) > SHOWN else ""
    return DataError(f"cannot read {len(bad)} images of a batch: {named}{more}", hint)


def _mode(interpolation: str) -> Any:
    from torchvision.transforms import InterpolationMode

    return InterpolationMode(interpolation)


def eval_transform(size: int, interpolation: str = "bilinear", crop_fraction: float = CROP_FRACTION) -> Transform:
    """Deterministic: resize the shorter side and centre-crop a square (with a margin from LARGE_IMAGE px)."""
    from torchvision import transforms as T

    resize = size if size < LARGE_IMAGE else int(size / crop_fraction)
    return T.Compose([T.Resize(resize, _mode(interpolation)), T.CenterCrop(size), T.PILToTensor()])


def crop_box(height: int, width: int, g: torch.Generator) -> tuple[int, int, int, int]:
    """(top, left, h, w) of a random resized crop, drawn as torchvision's RandomResizedCrop draws it
    (10 tries, then the centre crop of the closest allowed aspect), but from ``g``."""
    area = height * width
    for _ in range(10):
        s, r, y, x = torch.rand(4, generator=g).tolist()
        target = area * (SCALE[0] + s * (SCALE[1] - SCALE[0]))
        aspect = math.exp(LOG_RATIO[0] + r * (LOG_RATIO[1] - LOG_RATIO[0]))
        w, h = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
        if 0 < w <= width and 0 < h <= height:
            return int(y * (height - h + 1)), int(x * (width - w + 1)), h, w
    low, high = (math.exp(v) for v in LOG_RATIO)
    w, h = width, height
    if width / height < low:
        h = round(width / low)
    elif width / height > high:
        w = round(height * high)
    return (height - h) // 2, (width - w) // 2, h, w


@dataclass(frozen=True)
class ResizedCropFlip:
    """Training augmentation of one image from LARGE_IMAGE px on: a random resized crop to
    ``size`` x ``size`` and, with ``flip``, a horizontal flip half of the time."""

    size: int
    flip: bool
    interpolation: str = "bilinear"

    def __call__(self, image: Image.Image, g: torch.Generator) -> Tensor:
        from torchvision.transforms import functional as TF

        flipped = bool(torch.rand(1, generator=g) < 0.5) and self.flip  # drawn either way: crop or standard,
        top, left, h, w = crop_box(image.height, image.width, g)  # the same crops
        image = TF.resized_crop(image, top, left, h, w, [self.size, self.size], _mode(self.interpolation),
                                antialias=True)
        return TF.pil_to_tensor(TF.hflip(image) if flipped else image)


SampleAugment = Callable[[Any, torch.Generator], Tensor]  # (decoded image, its generator) -> CHW uint8


class AugmentedImages(Dataset):
    """Items keyed (position, the pass's seed) and augmented in the worker that decodes them, by a
    generator seeded from the two alone (``FolderLoader`` draws the pass's seed from (seed, augmentation
    epoch)): an image's crop never depends on which worker read it, nor on what was read before."""

    def __init__(self, dataset: Dataset, augment: SampleAugment) -> None:
        self.dataset, self.augment = dataset, augment

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, key: tuple[int, int]) -> tuple[Any, int, int]:
        pos, pass_seed = key
        image, label, index = self.dataset[pos]
        if isinstance(image, Unreadable):
            return image, label, index
        digest = hashlib.blake2b(f"{pass_seed}/{pos}".encode(), digest_size=8).digest()
        return self.augment(image, torch.Generator().manual_seed(int.from_bytes(digest, "little"))), label, index
