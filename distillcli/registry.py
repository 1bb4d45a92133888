"""One registry pattern for every kind of part: steps, models, model sources, datasets, losses,
pruning importances and model-file formats.

An ``Entry`` is torch-free: the public name, what the part can do (fields of the entry's own
subclass) and ``target``, the ``"module:attribute"`` of its implementation, imported on first use
(``entry.load()``). Each package declares its entries in one list beside its implementations, so
`distill validate`, `list` and `--help` know every name and capability without importing torch.

Third-party packages add entries through the Python entry-point group ``distillcli.<kind>s``
(``distillcli.losses``, ``distillcli.models`` ...): each entry point names an ``Entry`` (or a list
of them) in a torch-free module of theirs. They are read on first look-up.
"""

from __future__ import annotations

import difflib
import fnmatch
from dataclasses import dataclass
from importlib import import_module, metadata
from typing import Any, Generic, Iterable, Iterator, TypeVar

from distillcli.errors import UnknownNameError


def _edits(a: str, b: str) -> int:
    """Levenshtein distance (insertions, deletions, substitutions)."""
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, cb in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (ca != cb))
    return row[-1]


def matching(names: Iterable[str], pattern: str = "*") -> list[str]:
    """The names matching ``pattern``, sorted: a shell-style pattern when it has a wildcard, else the
    name itself if there is one so called, else every name containing it (``resnet``)."""
    names = list(names)
    if not any(c in pattern for c in "*?["):
        if pattern in names:
            return [pattern]
        pattern = f"*{pattern}*"
    return sorted(n for n in names if fnmatch.fnmatchcase(n, pattern))


def closest(word: str, choices: list[str] | tuple[str, ...] | set[str]) -> str | None:
    """The closest valid choice to a misspelt word, or None when nothing is close."""
    found = difflib.get_close_matches(word, sorted(choices), n=5, cutoff=0.6)
    return min(found, key=lambda c: (_edits(word.lower(), c.lower()), found.index(c))) if found else None


@dataclass(frozen=True)
class Entry:
    """A part known by name; ``target`` is ``"package.module:attribute"`` of its implementation."""

    name: str
    target: str
    summary: str = ""

    def load(self) -> Any:
        """The implementation (imports its module: usually torch)."""
        module, _, attr = self.target.partition(":")
        return getattr(import_module(module), attr)


E = TypeVar("E", bound=Entry)


class Registry(Generic[E]):
    """Public names (what users type in recipes) -> entries of one kind, with did-you-mean errors."""

    def __init__(self, kind: str, entry_type: type[E], entries: Iterable[E] = (), group: str | None = None) -> None:
        self.kind = kind
        self.entry_type = entry_type
        self.group = group  # the entry-point group third parties register in
        self._items: dict[str, E] = {}
        self._plugins_read = group is None
        for entry in entries:
            self.add(entry)

    def add(self, entry: E) -> E:
        if not isinstance(entry, self.entry_type):
            raise TypeError(f"a {self.kind} entry must be a {self.entry_type.__name__}, got {entry!r}")
        if entry.name in self._items:
            raise ValueError(f"{self.kind} {entry.name!r} is registered twice")
        self._items[entry.name] = entry
        return entry

    def _read_plugins(self) -> None:
        if self._plugins_read:
            return
        self._plugins_read = True
        for point in metadata.entry_points(group=self.group or ""):
            found = point.load()
            for entry in found if isinstance(found, (list, tuple)) else [found]:
                self.add(entry)

    def get(self, name: str) -> E:
        self._read_plugins()
        if name in self._items:
            return self._items[name]
        guess = closest(name, list(self._items))
        hint = f"did you mean {guess!r}?" if guess else f"choose one of: {', '.join(self.names())}"
        raise UnknownNameError(f"unknown {self.kind} {name!r}", hint)

    def load(self, name: str) -> Any:
        """The implementation of ``name`` (imported now)."""
        return self.get(name).load()

    def names(self, pattern: str = "*") -> list[str]:
        self._read_plugins()
        return matching(self._items, pattern)

    def entries(self) -> list[E]:
        return [self._items[n] for n in self.names()]

    def __contains__(self, name: object) -> bool:
        self._read_plugins()
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
