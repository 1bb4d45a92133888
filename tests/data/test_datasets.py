"""Dataset builders and load_data: on-disk CIFAR layout, image folders, digits, synthetic, options."""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest
import torch
from PIL import Image

from distillcli.data import DataConfig, load_data
from distillcli.data import cifar as cifar_module
from distillcli.errors import DataError, OptionError, UnknownNameError

SHARED_CIFAR = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "cifar10"
PER_BATCH = 4


def dump(path: Path, obj: object) -> None:
    path.write_bytes(pickle.dumps(obj, protocol=2))


def write_cifar10(root: Path) -> dict[str, np.ndarray]:
    """A tiny CIFAR-10 in the official layout; returns each file's 'data' array."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    arrays = {}
    for k, name in enumerate([f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]):
        data = rng.integers(0, 256, (PER_BATCH, 3072), dtype=np.uint8)
        arrays[name] = data
        labels = [(k + j) % 10 for j in range(PER_BATCH)]
        dump(folder / name, {b"batch_label": name.encode(), b"labels": labels, b"data": data})
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    dump(folder / "batches.meta", {b"label_names": [n.encode() for n in names], b"num_vis": 3072})
    return arrays


def test_cifar10_reads_the_official_layout(tmp_path):
    arrays = write_cifar10(tmp_path)
    cfg = DataConfig(name="cifar10", root=str(tmp_path))
    bundle = load_data(cfg, seed=1)
    assert (bundle.train.num_samples, bundle.val.num_samples) == (5 * PER_BATCH, PER_BATCH)
    assert bundle.class_names[:2] == ["airplane", "automobile"] and bundle.num_classes == 10
    assert bundle.input_shape == (3, 32, 32) and bundle.mean == [0.4914, 0.4822, 0.4465]
    assert bundle.train.augment == "standard" and bundle.spec == cfg.model_dump()
    x, y, idx = next(iter(bundle.val))
    raw = arrays["test_batch"]
    for c, r, col in [(0, 0, 0), (0, 1, 2), (1, 3, 4), (2, 31, 30)]:  # plane c, row r, column col
        assert x[1, c, r, col].item() == pytest.approx(raw[1, c * 1024 + r * 32 + col] / 255)
    assert y.tolist() == [(5 + j) % 10 for j in range(PER_BATCH)] and idx.tolist() == list(range(PER_BATCH))
    # Train samples keep the file order: index 4 * k + j is sample j of data_batch_{k+1}.
    train = load_data(cfg.model_copy(update={"augment": "none"})).train
    images, _, idx = (torch.cat(parts) for parts in zip(*train))
    expected = torch.from_numpy(arrays["data_batch_3"][2]).view(3, 32, 32).float() / 255
    assert torch.equal(images[(idx == 2 * PER_BATCH + 2).nonzero().item()], expected)


def test_cifar100_layout(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    for name, n in [("train", 6), ("test", 3)]:
        data = np.full((n, 3072), 7, dtype=np.uint8)
        dump(folder / name, {b"data": data, b"fine_labels": list(range(n)), b"coarse_labels": [0] * n})
    dump(folder / "meta", {b"fine_label_names": [f"c{i}".encode() for i in range(100)]})
    bundle = load_data(DataConfig(name="cifar100", root=str(tmp_path)))
    assert (bundle.train.num_samples, bundle.val.num_samples, bundle.num_classes) == (6, 3, 100)
    assert bundle.std == [0.2673, 0.2564, 0.2762]


def test_missing_cifar_says_where_and_how(tmp_path):
    root = tmp_path / "nowhere"
    with pytest.raises(DataError) as err:
        load_data(DataConfig(name="cifar10", root=str(root)))
    assert str(root.resolve() / "cifar-10-batches-py") in err.value.message
    assert "data.download: true" in err.value.hint and "--set data.root=" in err.value.hint
    assert "cifar-10-batches-py" in err.value.hint


def test_incomplete_cifar_names_the_missing_files(tmp_path):
    write_cifar10(tmp_path)
    os.remove(tmp_path / "cifar-10-batches-py" / "test_batch")
    with pytest.raises(DataError, match="lacks test_batch"):
        load_data(DataConfig(name="cifar10", root=str(tmp_path)))


def test_failed_download_is_one_data_error(tmp_path, monkeypatch):
    def offline(root, spec):
        raise URLError("no network")

    monkeypatch.setattr(cifar_module, "_download", offline)
    with pytest.raises(DataError) as err:
        load_data(DataConfig(name="cifar10", root=str(tmp_path), download=True))
    assert "download failed" in err.value.message and "no network" in err.value.message
    assert "cifar-10-batches-py" in err.value.message and "data.root" in err.value.hint


@pytest.mark.parametrize(
    "content, match",
    [
        (b"not a pickle at all", "corrupt"),
        (pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}), "labels"),
        (pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": ["a", "b"]}), "labels"),
        (pickle.dumps({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}), "3072"),
        (pickle.dumps(os.system), "refusing"),  # a pickle that would import something else
    ],
)
def test_corrupt_cifar_file(tmp_path, content, match):
    write_cifar10(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").write_bytes(content)
    with pytest.raises(DataError, match=match) as err:
        load_data(DataConfig(name="cifar10", root=str(tmp_path)))
    assert "data_batch_3" in err.value.message


@pytest.mark.slow
@pytest.mark.skipif(not SHARED_CIFAR.is_dir(), reason=f"real CIFAR-10 not present at {SHARED_CIFAR}")
def test_real_cifar10_matches_torchvision():
    from torchvision.datasets import CIFAR10

    bundle = load_data(DataConfig(name="cifar10", root=str(SHARED_CIFAR)))
    assert (bundle.train.num_samples, bundle.val.num_samples) == (50000, 10000)
    for loader, train in [(bundle.train, True), (bundle.val, False)]:
        reference = CIFAR10(str(SHARED_CIFAR), train=train)
        assert torch.equal(loader.images.permute(0, 2, 3, 1), torch.from_numpy(reference.data))
        assert loader.labels.tolist() == reference.targets
    assert bundle.class_names == reference.classes
    assert torch.bincount(bundle.train.labels).tolist() == [5000] * 10


def write_image_folder(root: Path, val_classes: tuple[str, ...] = ("cat", "dog")) -> None:
    rng = np.random.default_rng(0)
    for split, classes in [("train", ("cat", "dog")), ("val", val_classes)]:
        for name in classes:
            (root / split / name).mkdir(parents=True)
            for i in range(3):
                pixels = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(root / split / name / f"{i}.png")
    Image.fromarray(np.full((20, 20), 90, np.uint8), mode="L").save(root / "train" / "dog" / "gray.png")
    Image.fromarray(np.full((20, 20, 4), 200, np.uint8), mode="RGBA").save(root / "train" / "cat" / "rgba.png")


def test_imagefolder(tmp_path):
    write_image_folder(tmp_path)
    bundle = load_data(DataConfig(name="imagefolder", root=str(tmp_path), image_size=16, augment="none", batch_size=4))
    assert bundle.class_names == ["cat", "dog"] and bundle.input_shape == (3, 16, 16)
    assert bundle.mean == [0.485, 0.456, 0.406]  # photos: ImageNet's statistics unless a model or the recipe says
    assert (bundle.train.num_samples, bundle.val.num_samples, len(bundle.train)) == (8, 6, 2)
    batches = list(bundle.train)
    images, labels, idx = (torch.cat(parts) for parts in zip(*batches))
    assert images.shape == (8, 3, 16, 16) and 0 <= images.min() and images.max() <= 1
    assert sorted(idx.tolist()) == list(range(8))
    samples = bundle.train.dataset.folder.samples  # (path, label), in index order
    for i, x, y in zip(idx.tolist(), images, labels.tolist()):
        assert y == samples[i][1]
        if samples[i][0].endswith("gray.png"):
            assert torch.allclose(x, torch.full_like(x, 90 / 255))
        if samples[i][0].endswith("rgba.png"):
            assert torch.allclose(x, torch.full_like(x, 200 / 255))
    augmented = load_data(DataConfig(name="imagefolder", root=str(tmp_path), image_size=16, train_subset=5))
    assert augmented.train.augment == "standard" and augmented.train.num_samples == 5


def test_imagefolder_layout_errors(tmp_path):
    with pytest.raises(DataError, match="train") as err:
        load_data(DataConfig(name="imagefolder", root=str(tmp_path)))
    assert "ImageFolder layout" in err.value.hint
    write_image_folder(tmp_path / "mismatch", val_classes=("cat", "cow"))
    with pytest.raises(DataError, match=r"only in train: \['dog'\]; only in val: \['cow'\]"):
        load_data(DataConfig(name="imagefolder", root=str(tmp_path / "mismatch")))


def test_imagefolder_unreadable_image(tmp_path):
    write_image_folder(tmp_path)
    (tmp_path / "val" / "cat" / "0.png").write_bytes(b"broken")
    bundle = load_data(DataConfig(name="imagefolder", root=str(tmp_path)))
    with pytest.raises(DataError, match="cannot read image .*0.png"):
        list(bundle.val)


def test_digits_split_is_fixed_and_stratified():
    a = load_data(DataConfig(name="digits"), seed=0)
    b = load_data(DataConfig(name="digits", image_size=8), seed=5)
    assert (a.train.num_samples, a.val.num_samples) == (1437, 360)
    assert a.input_shape == (1, 32, 32) and b.input_shape == (1, 8, 8) and a.class_names[3] == "3"
    assert torch.equal(a.val.labels, b.val.labels)
    assert torch.bincount(a.val.labels).min() >= 35 and torch.bincount(a.val.labels).max() <= 37
    assert a.train.augment == "crop" and len(a.mean) == len(a.std) == 1 and 0.2 < a.mean[0] < 0.4
    images = b.val.images  # 8x8: the sklearn values, scaled from 0..16 to 0..255
    assert images.dtype == torch.uint8 and images.max() == 255 and images.min() == 0
    assert set(images.unique().tolist()) <= {round(v * 255 / 16) for v in range(17)}
    x, _, _ = next(iter(a.val))
    assert x.shape == (256, 1, 32, 32) and 0 <= x.min() and x.max() <= 1


def test_synthetic_shapes_and_learnability():
    cfg = DataConfig(name="synthetic", num_classes=4, channels=1, image_size=12, train_size=40, val_size=20)
    bundle = load_data(cfg)
    assert bundle.input_shape == (1, 12, 12) and bundle.num_classes == 4 and bundle.train.augment == "none"
    assert (bundle.train.num_samples, bundle.val.num_samples) == (40, 20)
    assert torch.equal(load_data(cfg, seed=9).val.images, bundle.val.images)
    train, val = bundle.train, bundle.val
    centroids = torch.stack([train.images[train.labels == k].float().mean(0) for k in range(4)])
    nearest = torch.cdist(val.images.float().flatten(1), centroids.flatten(1)).argmin(1)
    assert (nearest == val.labels).float().mean() > 0.9


def test_subsets_keep_the_first_samples():
    bundle = load_data(DataConfig(name="synthetic", train_subset=10, val_subset=1000, batch_size=4))
    assert (bundle.train.num_samples, bundle.val.num_samples, len(bundle.train)) == (10, 128, 3)
    full = load_data(DataConfig(name="synthetic"))
    assert torch.equal(bundle.train.images, full.train.images[:10])
    assert sorted(torch.cat([i for _, _, i in bundle.train]).tolist()) == list(range(10))


def test_option_errors():
    with pytest.raises(OptionError, match="data.mean has 2 value"):
        load_data(DataConfig(name="synthetic", mean=[0.1, 0.2]))
    with pytest.raises(OptionError, match="positive"):
        load_data(DataConfig(name="synthetic", std=[0.2, 0.0, 0.2]))
    with pytest.raises(OptionError, match="does not use data.num_classes"):
        load_data(DataConfig(name="digits", num_classes=3))
    with pytest.raises(UnknownNameError, match="did you mean 'digits'"):
        load_data(DataConfig(name="digitz"))
    custom = load_data(DataConfig(name="synthetic", mean=[0.1] * 3, std=[0.3] * 3, augment="standard"))
    assert custom.mean == [0.1] * 3 and custom.std == [0.3] * 3 and custom.train.augment == "standard"
