"""data.name: csv: images listed as `path,label` lines, decoded and transformed like an image folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from distillcli.data import DataConfig, load_data
from distillcli.errors import DataError

COLOURS = {"cat": (200, 10, 10), "dog": (10, 10, 200)}


def images(root: Path) -> dict[str, str]:
    """Solid-colour images, PNG and JPEG, in root/pics/: {relative path: class}."""
    (root / "pics" / "more").mkdir(parents=True)
    listed = {}
    for i in range(6):
        name = "cat" if i % 2 else "dog"
        path = f"pics/{'more/' if i > 3 else ''}{name}{i}.{'jpg' if i % 3 == 0 else 'png'}"
        Image.fromarray(np.full((24, 20, 3), COLOURS[name], np.uint8)).save(root / path)
        listed[path] = name
    return listed


def collect(loader) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return tuple(torch.cat(parts) for parts in zip(*loader))  # type: ignore[return-value]


def test_class_names_with_a_header_line(tmp_path):
    listed = images(tmp_path)
    paths = list(listed)
    (tmp_path / "train.csv").write_text("path,label\n" + "".join(f"{p},{listed[p]}\n" for p in paths[:4]) + "\n")
    (tmp_path / "val.csv").write_text("# held out\n" + "".join(f"{p},{listed[p]}\n" for p in paths[4:]))
    bundle = load_data(DataConfig(name="csv", root=str(tmp_path), image_size=16, augment="none", batch_size=3))
    assert bundle.class_names == ["cat", "dog"] and bundle.input_shape == (3, 16, 16)
    assert (bundle.train.num_samples, bundle.val.num_samples) == (4, 2)
    for loader, split in [(bundle.train, paths[:4]), (bundle.val, paths[4:])]:
        x, y, idx = collect(loader)
        for image, label, i in zip(x, y.tolist(), idx.tolist()):
            name = listed[split[i]]
            assert label == bundle.class_names.index(name)
            expected = torch.tensor(COLOURS[name]).view(3, 1, 1) / 255
            tolerance = 0.05 if split[i].endswith(".jpg") else 1e-6  # JPEG is lossy
            assert (image - expected).abs().max() <= tolerance


def test_class_indices_in_named_lists_separated_by_spaces(tmp_path):
    listed = images(tmp_path)
    (tmp_path / "lists").mkdir()
    (tmp_path / "lists" / "a.txt").write_text("".join(f"{p} {2 if listed[p] == 'cat' else 0}\n" for p in listed))
    (tmp_path / "lists" / "b.txt").write_text(f"{next(iter(listed))} 0\n")
    cfg = DataConfig(name="csv", root=str(tmp_path), train_list="lists/a.txt", val_list="lists/b.txt", image_size=96)
    bundle = load_data(cfg)
    assert bundle.class_names == ["0", "1", "2"] and bundle.num_classes == 3  # indices: up to the largest
    x, y, idx = collect(bundle.train)
    assert {(i, label) for i, label in zip(idx.tolist(), y.tolist())} == {
        (i, 2 if name == "cat" else 0) for i, name in enumerate(listed.values())}
    assert x.shape == (6, 3, 96, 96)  # read at 96 px: random resized crops


def test_missing_image_files_are_listed(tmp_path):
    listed = images(tmp_path)
    gone = [f"pics/gone{i}.png" for i in range(7)]
    (tmp_path / "train.csv").write_text("".join(f"{p},{listed[p]}\n" for p in listed) + "".join(
        f"{p},cat\n" for p in gone))
    (tmp_path / "val.csv").write_text("pics/dog0.jpg,dog\n")
    with pytest.raises(DataError) as err:
        load_data(DataConfig(name="csv", root=str(tmp_path)))
    assert err.value.message.startswith("csv: 7 listed image file(s) not found")
    assert "pics/gone0.png (train.csv line 7)" in err.value.message and "and 2 more" in err.value.message
    assert "pics/gone6.png" not in err.value.message and "remove their lines" in err.value.hint


@pytest.mark.parametrize("train, val, match", [
    ("pics/dog0.jpg,dog,extra\n", "pics/dog0.jpg,dog\n", r"train.csv: 1 line\(s\) are not `path,label`: line 1"),
    ("pics/dog0.jpg,dog\n", "pics/cat1.png,cat\n", "the validation list has classes the training list lacks: cat"),
    ("path,label\n", "pics/dog0.jpg,dog\n", "train.csv lists no images"),
    ("pics/dog0.jpg,dog\n", None, "list file .*val.csv not found"),
])
def test_malformed_lists(tmp_path, train, val, match):
    images(tmp_path)
    (tmp_path / "train.csv").write_text(train)
    if val is not None:
        (tmp_path / "val.csv").write_text(val)
    with pytest.raises(DataError, match=match):
        load_data(DataConfig(name="csv", root=str(tmp_path)))


def test_an_unreadable_listed_image(tmp_path):
    images(tmp_path)
    (tmp_path / "pics" / "cat1.png").write_bytes(b"\x89PNG broken")
    (tmp_path / "train.csv").write_text("pics/cat1.png,cat\npics/dog0.jpg,dog\n")
    (tmp_path / "val.csv").write_text("pics/dog0.jpg,dog\n")
    bundle = load_data(DataConfig(name="csv", root=str(tmp_path), image_size=8))
    with pytest.raises(DataError, match=r"cannot read image .*cat1\.png"):
        list(bundle.train)
