"""TensorLoader and FolderLoader: coverage, determinism, augmentation, layout."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from distillcli.data.loaders import PAD, FolderLoader, TensorLoader

N, C, S = 50, 3, 8


@pytest.fixture
def data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    images = torch.randint(1, 256, (N, C, S, S), dtype=torch.uint8, generator=g)  # no zeros: padding is visible
    return images, torch.arange(N) % 7


def epoch(loader, e: int = 0) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    loader.set_epoch(e)
    return list(loader)


def windows(image: torch.Tensor) -> torch.Tensor:
    """All (2*PAD+1)^2 shifted copies of a zero-padded image, (K, C, S, S) in [0, 1]."""
    padded = F.pad(image.float() / 255, (PAD,) * 4)
    return padded.unfold(1, S, 1).unfold(2, S, 1).permute(1, 2, 0, 3, 4).reshape(-1, C, S, S)


def test_batches_cover_every_sample_once(data):
    images, labels = data
    loader = TensorLoader(images, labels, 16, shuffle=True, seed=3)
    batches = epoch(loader)
    assert len(loader) == len(batches) == 4 and [len(b[0]) for b in batches] == [16, 16, 16, 2]
    idx = torch.cat([b[2] for b in batches])
    assert sorted(idx.tolist()) == list(range(N)) and loader.num_samples == N
    for x, y, i in batches:
        assert x.dtype == torch.float32 and y.dtype == i.dtype == torch.int64
        assert torch.equal(x, images[i].float() / 255) and torch.equal(y, labels[i])


def test_unshuffled_keeps_order(data):
    idx = torch.cat([b[2] for b in TensorLoader(*data, 16)])
    assert idx.tolist() == list(range(N))


def test_order_depends_only_on_seed_and_epoch(data):
    def order(loader, e: int) -> list[int]:
        return torch.cat([b[2] for b in epoch(loader, e)]).tolist()

    a = TensorLoader(*data, 16, shuffle=True, augment="standard", seed=1)
    b = TensorLoader(*data, 16, shuffle=True, augment="standard", seed=1)
    for e in range(3):  # a runs epochs 0..2 before epoch 5; b jumps straight there
        epoch(a, e)
    first, second = epoch(a, 5), epoch(b, 5)
    assert all(torch.equal(p, q) for x, y in zip(first, second) for p, q in zip(x, y))
    assert order(a, 5) != order(a, 6)
    assert order(a, 5) != order(TensorLoader(*data, 16, shuffle=True, seed=2), 5)


@pytest.mark.parametrize("mode", ["crop", "standard"])
def test_crop_is_a_shifted_copy(data, mode):
    images, labels = data
    loader = TensorLoader(images, labels, 16, shuffle=True, augment=mode, seed=0)
    flipped = shifted = 0
    for x, _, idx in epoch(loader):
        assert x.shape == (len(idx), C, S, S)
        for image, i in zip(x, idx):
            shifts = windows(images[i])
            plain = (shifts == image).flatten(1).all(1).any().item()
            mirrored = (shifts.flip(3) == image).flatten(1).all(1).any().item()
            assert plain or mirrored
            flipped += not plain
            original = images[i].float() / 255
            shifted += not (torch.equal(image, original) or torch.equal(image, original.flip(2)))
    assert shifted > N - N // 5
    assert (flipped == 0) if mode == "crop" else (N // 5 < flipped < N - N // 5)


def test_no_augmentation_in_none_mode(data):
    images, labels = data
    for x, _, i in TensorLoader(images, labels, 64, shuffle=True, augment="none"):
        assert torch.equal(x, images[i].float() / 255)


def test_channels_last(data):
    plain = epoch(TensorLoader(*data, 16, shuffle=True, augment="standard"))
    last = epoch(TensorLoader(*data, 16, shuffle=True, augment="standard", channels_last=True))
    for (x, _, _), (z, _, _) in zip(plain, last):
        assert z.is_contiguous(memory_format=torch.channels_last)
        assert not x.is_contiguous(memory_format=torch.channels_last)
        assert torch.equal(x, z)


def test_rejects_non_uint8_images(data):
    with pytest.raises(ValueError, match="uint8"):
        TensorLoader(data[0].float(), data[1], 4)


class Indexed(Dataset):
    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        return self.images[i], int(self.labels[i]), i


def test_folder_loader(data):
    images, labels = data
    loader = FolderLoader(Indexed(images, labels), 16, shuffle=True, augment="crop", seed=4, channels_last=True)
    batches = epoch(loader, 2)
    assert len(loader) == 4 and loader.num_samples == N
    assert sorted(torch.cat([b[2] for b in batches]).tolist()) == list(range(N))
    again = epoch(loader, 2)
    assert all(torch.equal(p, q) for x, y in zip(batches, again) for p, q in zip(x, y))
    x, y, idx = batches[0]
    assert x.dtype == torch.float32 and x.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(y, labels[idx]) and not torch.equal(x, images[idx].float() / 255)
    assert all((windows(images[i]) == image).flatten(1).all(1).any() for image, i in zip(x, idx))
    plain = list(FolderLoader(Indexed(images, labels), 64))
    assert torch.equal(plain[0][0], images.float() / 255) and plain[0][2].tolist() == list(range(N))
