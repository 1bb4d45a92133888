"""data.val_split: a class-stratified share of the training data, fixed by the seed, chooses
per epoch; the test split only measures final models."""

from __future__ import annotations

import json

import pytest
import torch

from distillcli.data import DataBundle, DataConfig, load_data
from distillcli.data.datasets import split_off
from distillcli.errors import DataError, RecipeError
from distillcli.engine.pipeline import Pipeline
from distillcli.progress import SilentProgress
from distillcli.recipe import load_recipe, validate_raw
from tests.conftest import tiny_recipe
from tests.data.test_datasets import write_image_folder


def synthetic(seed: int = 0) -> DataBundle:
    cfg = DataConfig(name="synthetic", num_classes=4, image_size=8, train_size=200, val_size=16, batch_size=32,
                     val_split=0.2)
    return load_data(cfg, seed=seed)


def yielded(loader) -> tuple[torch.Tensor, torch.Tensor]:
    """(indices, labels) of every sample the loader yields."""
    _, labels, idx = (torch.cat(parts) for parts in zip(*loader))
    return idx, labels


def test_the_split_is_disjoint_from_training_and_stratified() -> None:
    bundle = synthetic()
    assert (bundle.train.num_samples, bundle.select.num_samples, bundle.val.num_samples) == (160, 40, 16)
    assert not bundle.select.shuffle and bundle.select.augment == "none" and bundle.select.batch_size == 256
    train_idx, _ = yielded(bundle.train)
    select_idx, select_labels = yielded(bundle.select)
    assert not set(train_idx.tolist()) & set(select_idx.tolist())
    assert sorted(train_idx.tolist() + select_idx.tolist()) == list(range(200))
    assert torch.bincount(select_labels).tolist() == [10] * 4
    # labels travel with their index: synthetic label i is i % 4 in the full training split
    assert torch.equal(select_labels, select_idx % 4)


def test_uneven_classes_get_their_share_by_largest_remainder() -> None:
    labels = torch.tensor([0] * 7 + [1] * 5 + [2] * 3)
    keep, held = split_off(labels, 0.3, seed=0)  # 4.5 -> 5 held: 2.1, 1.5, 0.9 -> 2, 2, 1
    assert torch.bincount(labels[held], minlength=3).tolist() == [2, 2, 1]
    assert len(keep) == 10 and not set(keep.tolist()) & set(held.tolist())
    with pytest.raises(DataError, match="holds out none"):
        split_off(torch.tensor([0]), 0.1, seed=0)


def test_the_split_is_fixed_by_the_seed() -> None:
    a, b, other = synthetic(seed=3), synthetic(seed=3), synthetic(seed=4)
    assert torch.equal(yielded(a.select)[0], yielded(b.select)[0])
    assert not torch.equal(yielded(a.select)[0], yielded(other.select)[0])
    assert load_data(DataConfig(name="synthetic", train_size=64, val_size=16)).select is None


def test_imagefolder_holds_out_the_same_way(tmp_path) -> None:
    write_image_folder(tmp_path)  # 4 cat and 4 dog training images
    bundle = load_data(DataConfig(name="imagefolder", root=str(tmp_path), image_size=8, val_split=0.5))
    train_idx, _ = yielded(bundle.train)
    select_idx, select_labels = yielded(bundle.select)
    assert sorted(train_idx.tolist() + select_idx.tolist()) == list(range(8))
    assert torch.bincount(select_labels).tolist() == [2, 2] and bundle.select.augment == "none"


def test_val_from_test_compares_on_a_fixed_share_of_the_test_split_and_measures_on_the_rest() -> None:
    def bundle(seed: int) -> DataBundle:
        return load_data(DataConfig(name="synthetic", num_classes=4, image_size=8, train_size=64, val_size=40,
                                    batch_size=32, val_split=0.5, val_from="test"), seed=seed)

    a, b = bundle(0), bundle(7)
    assert (a.train.num_samples, a.select.num_samples, a.val.num_samples) == (64, 20, 20)  # training untouched
    select, _ = yielded(a.select)
    assert torch.equal(select, yielded(b.select)[0])  # the same share for every seed
    measured, chosen = ({tuple(image.flatten().tolist()) for x, _, _ in loader for image in x} for loader in (a.val, a.select))
    assert not measured & chosen and len(measured | chosen) == 40  # disjoint halves of the 40 test images
    with pytest.raises(RecipeError, match="val_from"):
        validate_raw(tiny_recipe(data={"name": "synthetic", "val_from": "test"}))


def test_training_chooses_on_the_held_out_split(tmp_path, write_recipe, one_thread) -> None:
    raw = tiny_recipe(teacher=None, steps=[{"train": {"epochs": 2, "lr": 0.05}}], report={"latency": False})
    raw["data"]["val_split"] = 0.2
    Pipeline(load_recipe(write_recipe(raw)), SilentProgress(), out=tmp_path / "run").run()
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert (metrics["data"]["train_samples"], metrics["data"]["val_samples"]) == (205, 51)
    assert (metrics["data"]["test_samples"], metrics["data"]["measured_on"]) == (64, "test")
    curve = metrics["steps"][0]["curve"]
    assert len(curve) == 2 and all(row["val_top1"] is not None and row["test_top1"] is not None for row in curve)
    best = metrics["steps"][0]["best"]
    top = max(curve, key=lambda row: row["val_top1"])
    assert best == {"epoch": top["epoch"], "val_top1": top["val_top1"], "test_top1": top["test_top1"]}
    assert metrics["steps"][0]["measures"]["samples"] == 64  # the final model on the test split
    assert "validation split (51 training images" in (tmp_path / "run" / "report.md").read_text()


@pytest.mark.parametrize("share", [0.9, 0.0])
def test_validate_rejects_a_share_out_of_range(share) -> None:
    raw = tiny_recipe()
    raw["data"]["val_split"] = share
    with pytest.raises(RecipeError) as info:
        validate_raw(raw)
    assert any(p.startswith("data.val_split") for p in info.value.problems), info.value.problems
