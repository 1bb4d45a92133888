"""Image files at real resolution: transforms by size, mean/std defaults, loader workers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision import transforms as T

from distillcli.data import DataConfig, load_data
from distillcli.data.config import IMAGENET_MEAN, IMAGENET_STD
from distillcli.data.folder import resolve_workers
from distillcli.data.loaders import PAD, FolderLoader
from distillcli.errors import DataError
from distillcli.modelfile import read_header
from distillcli.engine.pipeline import Pipeline
from distillcli.progress import SilentProgress
from distillcli.recipe import load_recipe, validate_raw
from distillcli.data.config import PretrainedInput
from distillcli.engine.models import pretrained_input_of
from tests.conftest import tiny_recipe


def photos(root: Path, per_class: int = 3, shape: tuple[int, int] = (100, 130)) -> Path:
    """root/{train,val}/{cat,dog}/*.png: noise without zeros (zero padding would show), H x W = shape."""
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for name in ("cat", "dog"):
            (root / split / name).mkdir(parents=True)
            for i in range(per_class):
                pixels = rng.integers(1, 256, (*shape, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(root / split / name / f"{i}.png")
    return root


def folder(root: Path, size: int, **options) -> DataConfig:
    return DataConfig(name="imagefolder", root=str(root), image_size=size, batch_size=4, **options)


def stacked(loader, epoch: int = 0, first: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(images, indices) of a pass, in the order yielded."""
    loader.set_epoch(epoch)
    x, _, idx = (torch.cat(parts) for parts in zip(*loader.iter_from(first)))
    return x, idx


def by_index(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    return x[idx.argsort()]


def reference(path: str, resize: int, size: int, mode: str = "bilinear") -> torch.Tensor:
    """torchvision's evaluation transform: resize the shorter side, centre crop."""
    image = Image.open(path).convert("RGB")
    resized = T.Resize(resize, T.InterpolationMode(mode))
    return T.Compose([resized, T.CenterCrop(size), T.PILToTensor()])(image).float() / 255


def test_evaluation_resizes_and_centre_crops(tmp_path):
    root = photos(tmp_path)
    # below 64 px a plain resize; from 64 px size / crop_fraction (109 for 96 at the default 0.875)
    for size, resize, options in [(16, 16, {}), (96, 109, {}), (96, 101, {"interpolation": "bicubic", "crop_fraction": 0.95})]:
        bundle = load_data(folder(root, size, **options))
        x, idx = stacked(bundle.val)
        assert x.shape == (6, 3, size, size) and torch.equal(stacked(bundle.val)[0], x)  # deterministic
        samples = bundle.val.dataset.folder.samples
        for image, i in zip(x, idx.tolist()):
            assert torch.equal(image, reference(samples[i][0], resize, size, options.get("interpolation", "bilinear")))
    assert not torch.equal(x, stacked(load_data(folder(root, 96, crop_fraction=0.95)).val)[0])  # bicubic differs


def test_training_crops_by_size(tmp_path):
    root = photos(tmp_path)
    plain = by_index(*stacked(load_data(folder(root, 16, augment="none")).train))
    augmented = by_index(*stacked(load_data(folder(root, 16)).train))
    assert augmented.shape == plain.shape == (6, 3, 16, 16)
    for a, p in zip(augmented, plain):  # 16 px: one of the shifted windows of the zero-padded image, or its mirror
        windows = F.pad(p, (PAD,) * 4).unfold(1, 16, 1).unfold(2, 16, 1).permute(1, 2, 0, 3, 4).reshape(-1, 3, 16, 16)
        assert any(torch.equal(a, w) or torch.equal(a, w.flip(-1)) for w in windows)
    large = stacked(load_data(folder(root, 64)).train)[0]
    assert large.shape == (6, 3, 64, 64) and large.min() > 0  # 64 px: resized crops of the image, never padding


def test_large_images_train_on_random_resized_crops_drawn_by_seed_epoch_and_sample(tmp_path):
    root = photos(tmp_path)
    bundle = load_data(folder(root, 96))
    x, idx = stacked(bundle.train)
    assert x.shape == (6, 3, 96, 96) and x.min() > 0  # a crop of the image: no zero padding anywhere
    plain = by_index(*stacked(load_data(folder(root, 96, augment="none")).train))
    assert not torch.equal(by_index(x, idx), plain)
    # the same (seed, epoch): the same images, whether fresh, read by a worker process, or resumed mid-epoch
    again = load_data(folder(root, 96, workers=1)).train
    assert torch.equal(stacked(again)[0], x) and torch.equal(stacked(again, first=1)[0], x[4:])
    assert not torch.equal(by_index(*stacked(bundle.train, epoch=1)), by_index(x, idx))
    # crop only: the same crops, each one as it is or mirrored
    crops = by_index(*stacked(load_data(folder(root, 96, augment="crop")).train))
    flipped = [not torch.equal(c, s) for c, s in zip(crops, by_index(x, idx))]
    assert all(torch.equal(c.flip(-1), s) for c, s, f in zip(crops, by_index(x, idx), flipped) if f)
    assert 0 < sum(flipped) < 6


def test_photos_default_to_imagenet_normalisation_recorded_with_the_data(tmp_path):
    bundle = load_data(folder(photos(tmp_path), 16))
    assert (bundle.mean, bundle.std) == (IMAGENET_MEAN, IMAGENET_STD)
    assert (bundle.spec["mean"], bundle.spec["std"]) == (IMAGENET_MEAN, IMAGENET_STD)
    assert load_data(DataConfig(name="synthetic")).mean == [0.5] * 3  # other data keeps its own


def test_a_timm_model_brings_its_pretrained_normalisation_and_the_recipe_wins(tmp_path):
    data = {"name": "imagefolder", "root": str(photos(tmp_path)), "image_size": 16}
    timm_student = validate_raw(tiny_recipe(data=data, teacher=None, student={"arch": "timm:test_resnet"},
                                            steps=[{"evaluate": {}}]))
    expects = pretrained_input_of(timm_student)  # test_resnet's pretrained_cfg
    assert (expects.mean, expects.std, expects.size, expects.interpolation, expects.crop_fraction) == (
        [0.5] * 3, [0.5] * 3, 160, "bilinear", 0.95)
    assert pretrained_input_of(validate_raw(tiny_recipe(data=data))) is None  # built-in models
    cfg = DataConfig(**data)
    bundle = load_data(cfg, pretrained=expects)
    assert bundle.mean == [0.5] * 3 and bundle.input_shape == (3, 16, 16)  # the recipe's image_size wins
    assert (bundle.spec["interpolation"], bundle.spec["crop_fraction"]) == ("bilinear", 0.95)
    unsized = cfg.model_copy(update={"image_size": None})
    assert load_data(unsized, pretrained=expects).input_shape == (3, 160, 160)
    given = cfg.model_copy(update={"mean": [0.1, 0.2, 0.3], "interpolation": "nearest"})
    bundle = load_data(given, pretrained=PretrainedInput([0.5] * 3, [0.25] * 3, 64))
    assert (bundle.mean, bundle.std, bundle.spec["mean"]) == ([0.1, 0.2, 0.3], [0.25] * 3, [0.1, 0.2, 0.3])
    assert (bundle.spec["interpolation"], bundle.spec["crop_fraction"]) == ("nearest", 0.875)


def test_a_run_records_the_timm_models_normalisation(tmp_path, write_recipe, one_thread):
    data = {"name": "imagefolder", "root": str(photos(tmp_path / "images", per_class=2, shape=(40, 40))),
            "image_size": 32, "batch_size": 4}
    raw = tiny_recipe(data=data, teacher=None, student={"arch": "timm:test_resnet"}, steps=[{"evaluate": {}}],
                      report={"latency": False, "formats": ["json"]})
    Pipeline(load_recipe(write_recipe(raw)), SilentProgress(), out=tmp_path / "run").run()
    files = sorted((tmp_path / "run").rglob("*.pt"))
    header = read_header(files[-1])
    assert header["data"]["mean"] == [0.5] * 3 and header["arch"]["mean"] == [0.5] * 3


def test_workers_default_from_the_cores(monkeypatch):
    assert DataConfig().workers == "auto" and DataConfig(workers=3).workers == 3
    for cores, expected in [(16, 8), (4, 3), (2, 1), (1, 0)]:
        monkeypatch.setattr("os.sched_getaffinity", lambda _, n=cores: set(range(n)), raising=False)
        assert resolve_workers("auto", 5000) == expected
    assert resolve_workers("auto", 999) == 0 and resolve_workers(2, 10) == 2  # a tiny split starts none


def test_workers_persist_and_pin_memory_on_cuda_only(tmp_path):
    data = [(torch.zeros(3, 4, 4, dtype=torch.uint8), 0, i) for i in range(4)]
    loaders = {(device, workers): FolderLoader(data, 2, device=device, workers=workers)._data_loader()
               for device in ("cpu", "cuda") for workers in (0, 2)}
    assert [(d.persistent_workers, d.pin_memory) for d in loaders.values()] == [
        (False, False), (False, False), (False, True), (True, True)]
    tiny = load_data(folder(photos(tmp_path), 16))
    assert tiny.train.workers == tiny.val.workers == 0


def test_an_unreadable_image_read_by_a_worker_is_one_clean_error(tmp_path):
    root = photos(tmp_path)
    (root / "val" / "dog" / "1.png").write_bytes(b"not an image")
    bundle = load_data(folder(root, 96, workers=1))
    with pytest.raises(DataError) as err:
        list(bundle.val)
    assert err.value.message.startswith(f"cannot read image {root / 'val' / 'dog' / '1.png'}")
    assert "Traceback" not in err.value.message and "replace" in err.value.hint
