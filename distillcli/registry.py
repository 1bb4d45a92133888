"""A small name -> object registry with wildcard listing and did-you-mean errors."""

from __future__ import annotations

import difflib
import fnmatch
from typing import Callable, Generic, Iterable, Iterator, TypeVar

from distillcli.errors import UnknownNameError

T = TypeVar("T")


def _edits(a: str, b: str) -> int:
    """Levenshtein distance (insertions, deletions, substitutions)."""
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, cb in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (ca != cb))
    return row[-1]


def matching(names: Iterable[str], pattern: str = "*") -> list[str]:
    """The names matching a shell-style ``pattern`` (case-sensitive), sorted."""
    return sorted(n for n in names if fnmatch.fnmatchcase(n, pattern))


def closest(word: str, choices: list[str] | tuple[str, ...] | set[str]) -> str | None:
    """The closest valid choice to a misspelt word, or None when nothing is close."""
    found = difflib.get_close_matches(word, sorted(choices), n=5, cutoff=0.6)
    return min(found, key=lambda c: (_edits(word.lower(), c.lower()), found.index(c))) if found else None


class Registry(Generic[T]):
    """Maps public names (what users type in recipes) to components."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str | None = None) -> Callable[[T], T]:
        def add(obj: T) -> T:
            key = name or getattr(obj, "__name__")
            if key in self._items:
                raise ValueError(f"{self.kind} {key!r} is registered twice")
            self._items[key] = obj
            return obj

        return add

    def get(self, name: str) -> T:
        if name in self._items:
            return self._items[name]
        guess = closest(name, list(self._items))
        hint = f"did you mean {guess!r}?" if guess else f"choose one of: {', '.join(self.names())}"
        raise UnknownNameError(f"unknown {self.kind} {name!r}", hint)

    def names(self, pattern: str = "*") -> list[str]:
        return matching(self._items, pattern)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
