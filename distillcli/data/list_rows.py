"""Reading image list files (``data: {name: csv}``) without torch: the ``path,label`` rows, the
classes they name, and the listed files that are missing. The loader (``list_file``) and
`distill validate` (``layout``) both read the lists through here."""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

from distillcli.data.config import DataConfig
from distillcli.errors import DataError

SHOWN = 5  # lines or files named in an error
MAX_CLASSES = 100_000
FORMAT_HINT = ("list one image per line as `relative/path.jpg,label` (the path relative to data.root, the label "
               "a class index or name), e.g. --set data.train_list=train.csv")

Row = tuple[str, str, int]  # (path as written, label, line number)


@dataclass(frozen=True)
class ImageList:
    """One split: ``samples`` [(path, class index)], the classes' names."""

    samples: list[tuple[str, int]]
    classes: list[str]

    @property
    def targets(self) -> list[int]:
        return [label for _, label in self.samples]


def listing(items: list[str], sep: str = "; ") -> str:
    """The first SHOWN items and how many more: what an error names."""
    more = len(items) - SHOWN
    return sep.join(items[:SHOWN]) + (f" and {more} more" if more > 0 else "")


def _is_header(path: str) -> bool:
    from PIL import Image

    return Path(path).suffix.lower() not in Image.registered_extensions()


def read_list(path: Path) -> list[Row]:
    """The (path, label, line) rows of a list file, its header left out."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise DataError(f"csv: list file {path} not found", FORMAT_HINT) from None
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"csv: cannot read list file {path} ({err})", "give a UTF-8 text file") from None
    rows: list[Row] = []
    bad: list[str] = []
    first = True
    for number, fields in enumerate(csv.reader(text.splitlines()), 1):
        fields = [f.strip() for f in fields]
        if not any(fields) or fields[0].startswith("#"):
            continue
        if len(fields) == 1:  # `path label`
            fields = fields[0].rsplit(None, 1)
        if first:
            first = False
            if _is_header(fields[0]):
                continue
        if len(fields) != 2 or not all(fields):
            bad.append(f"line {number}")
        else:
            rows.append((fields[0], fields[1], number))
    if bad:
        raise DataError(f"csv: {path}: {len(bad)} line(s) are not `path,label`: {listing(bad)}", FORMAT_HINT)
    if not rows:
        raise DataError(f"csv: {path} lists no images", FORMAT_HINT)
    return rows


def label_index(train: list[Row], val: list[Row], where: Path) -> tuple[list[str], dict[str, int]]:
    """(the class names, each label's index): class indices when every label is a whole number,
    else the training list's names, sorted."""
    labels = {label for rows in (train, val) for _, label, _ in rows}
    if all(label.isascii() and label.isdigit() for label in labels):
        index = {label: int(label) for label in labels}
        count = max(index.values()) + 1
        if count > MAX_CLASSES:
            raise DataError(f"csv: class index {count - 1} in {where} is over the limit of {MAX_CLASSES - 1}",
                            "number the classes from 0")
        return [str(i) for i in range(count)], index
    names = sorted({label for _, label, _ in train})
    unknown = sorted({label for _, label, _ in val} - set(names))
    if unknown:
        raise DataError(f"csv: the validation list has classes the training list lacks: {listing(unknown)}",
                        "give every validation class training images too (or check the labels' spelling)")
    return names, {name: i for i, name in enumerate(names)}




def read_lists(cfg: DataConfig) -> list[ImageList]:
    """Both splits' lists, every listed file checked to exist (paths made absolute)."""
    root = Path(cfg.root).expanduser().resolve()
    lists = [root / (cfg.train_list or "train.csv"), root / (cfg.val_list or "val.csv")]
    rows = [read_list(path) for path in lists]
    classes, index = label_index(*rows, root)
    splits, missing = [], []
    for path, split in zip(lists, rows):
        samples = [(str(root / image), index[label]) for image, label, _ in split]
        missing += [f"{image} ({path.name} line {line})" for (image, _, line), (file, _) in zip(split, samples)
                    if not os.path.isfile(file)]
        splits.append(ImageList(samples, classes))
    if missing:
        raise DataError(f"csv: {len(missing)} listed image file(s) not found under {root}: {listing(missing)}",
                        "fix the paths (relative to data.root) or remove their lines from the list")
    return splits
