"""CIFAR-10 and CIFAR-100 from the official "python version" files.

The files are read here rather than through ``torchvision.datasets.CIFAR10``: torchvision
refuses any file whose MD5 differs from the official one, which rules out small test copies,
and it unpickles with the full ``pickle`` module. This reader checks the layout instead and
only lets the pickles build numpy arrays. Downloading still goes through torchvision.
"""

from __future__ import annotations

import codecs
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from distillcli.data.bundle import DataBundle
from distillcli.data.config import DataConfig
from distillcli.data.datasets import Builder, tensor_bundle
from distillcli.errors import DataError

Split = tuple[Tensor, Tensor]  # images (N, 3, 32, 32) uint8, labels (N,) int64


@dataclass(frozen=True)
class CifarSpec:
    title: str
    folder: str
    archive: str  # the torchvision class that knows the download url and checksum
    train_files: tuple[str, ...]
    test_files: tuple[str, ...]
    meta_file: str
    label_key: str
    names_key: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    @property
    def files(self) -> tuple[str, ...]:
        return (*self.train_files, *self.test_files, self.meta_file)


CIFAR10 = CifarSpec(
    "CIFAR-10", "cifar-10-batches-py", "CIFAR10",
    tuple(f"data_batch_{i}" for i in range(1, 6)), ("test_batch",), "batches.meta", "labels", "label_names",
    (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616),
)
CIFAR100 = CifarSpec(
    "CIFAR-100", "cifar-100-python", "CIFAR100",
    ("train",), ("test",), "meta", "fine_labels", "fine_label_names",
    (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762),
)


_RECONSTRUCT = np.zeros(0).__reduce__()[0]  # numpy's array rebuilder, wherever this numpy keeps it
_FROMBUFFER = np.zeros(1).__reduce_ex__(5)[0]  # its protocol-5 counterpart


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles dicts, lists, strings and numpy arrays; refuses every other global."""

    _allowed = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
        ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
        ("numpy.core.numeric", "_frombuffer"): _FROMBUFFER,
        ("numpy._core.numeric", "_frombuffer"): _FROMBUFFER,
        ("_codecs", "encode"): codecs.encode,  # bytes in protocol-2 pickles written by Python 3
    }

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}") from None


def _load_pickle(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            entry = _ArrayUnpickler(f, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as err:
        raise DataError(f"{path} is corrupt or not a CIFAR pickle ({err})", _corrupt_hint(path)) from None
    if not isinstance(entry, dict):
        raise DataError(f"{path} holds a {type(entry).__name__}, not a CIFAR batch dict", _corrupt_hint(path))
    # Official files are Python-2 pickles (str keys under latin1); re-pickled copies may have bytes keys.
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in entry.items()}


def _corrupt_hint(path: Path) -> str:
    return (
        f"replace {path.parent} with a fresh copy of the official python version "
        "(or delete it and set data.download: true)"
    )


def _check_labels(path: Path, targets: Any, key: str, count: int, num_classes: int) -> np.ndarray:
    try:
        labels = np.asarray(targets, dtype=np.int64)
    except (TypeError, ValueError):
        labels = np.zeros(0, dtype=np.int64)
    if labels.shape != (count,) or (count and not 0 <= labels.min() <= labels.max() < num_classes):
        raise DataError(f"{path}: {key!r} must hold {count} labels in 0..{num_classes - 1}", _corrupt_hint(path))
    return labels


def _read_split(folder: Path, spec: CifarSpec, files: tuple[str, ...], num_classes: int) -> Split:
    images, labels = [], []
    for name in files:
        path = folder / name
        entry = _load_pickle(path)
        data, targets = entry.get("data"), entry.get(spec.label_key)
        if not (isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 2 and data.shape[1] == 3072):
            raise DataError(f"{path}: 'data' is not a uint8 array of shape (N, 3072)", _corrupt_hint(path))
        images.append(data)
        labels.append(_check_labels(path, targets, spec.label_key, data.shape[0], num_classes))
    # Each row is the R, G and B planes, each 32x32 row-major: exactly (3, 32, 32) in C order.
    return torch.from_numpy(np.concatenate(images)).view(-1, 3, 32, 32), torch.from_numpy(np.concatenate(labels))


def _read_class_names(folder: Path, spec: CifarSpec) -> list[str]:
    path = folder / spec.meta_file
    names = _load_pickle(path).get(spec.names_key)
    if not (isinstance(names, list) and names and all(isinstance(n, (str, bytes)) for n in names)):
        raise DataError(f"{path}: {spec.names_key!r} is not a list of class names", _corrupt_hint(path))
    return [n.decode("latin1") if isinstance(n, bytes) else n for n in names]


def _missing_error(root: Path, spec: CifarSpec, missing: list[str], cause: str | None) -> DataError:
    folder = root / spec.folder
    where = f"{folder} does not exist" if not folder.is_dir() else f"{folder} lacks {', '.join(missing)}"
    message = f"{spec.title} not found: {where}"
    if cause:
        message += f"; the download failed: {cause}"
    hint = (
        f"set data.download: true on a machine with internet, or point data.root at a folder that "
        f"contains {spec.folder}/ (the official python version), e.g. --set data.root=/path/to/datasets"
    )
    return DataError(message, hint)


def _download(root: Path, spec: CifarSpec) -> None:
    """Fetch and unpack the official archive with torchvision's downloader (checks its MD5)."""
    import torchvision.datasets as tvd
    from torchvision.datasets.utils import download_and_extract_archive

    cls = getattr(tvd, spec.archive)
    root.mkdir(parents=True, exist_ok=True)
    download_and_extract_archive(cls.url, str(root), filename=cls.filename, md5=cls.tgz_md5)


def load_cifar(root: str | Path, spec: CifarSpec, download: bool = False) -> tuple[Split, Split, list[str]]:
    """(train, test, class names) of a CIFAR dataset under ``root``, downloading it if asked."""
    root = Path(root).expanduser().resolve()
    folder = root / spec.folder
    missing = [name for name in spec.files if not (folder / name).is_file()]
    if missing and download:
        try:
            _download(root, spec)
        except Exception as err:  # network, disk and checksum failures all end the same way
            raise _missing_error(root, spec, missing, f"{type(err).__name__}: {err}") from None
        missing = [name for name in spec.files if not (folder / name).is_file()]
    if missing:
        raise _missing_error(root, spec, missing, None)
    names = _read_class_names(folder, spec)
    train = _read_split(folder, spec, spec.train_files, len(names))
    test = _read_split(folder, spec, spec.test_files, len(names))
    return train, test, names


def _builder(spec: CifarSpec) -> Builder:
    def build(cfg: DataConfig, device: torch.device, seed: int, channels_last: bool) -> DataBundle:
        train, test, names = load_cifar(cfg.root, spec, cfg.download)
        return tensor_bundle(
            cfg, device, seed, channels_last, train=train, val=test, class_names=names,
            mean=list(spec.mean), std=list(spec.std), default_augment="standard",
        )

    return build


build_cifar10 = _builder(CIFAR10)
build_cifar100 = _builder(CIFAR100)
