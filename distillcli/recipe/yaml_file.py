"""Recipe text -> a raw mapping: bounded, safe YAML loading and ``--set a.b.c=value`` overrides.

Hostile input ends in one RecipeError: files that are not regular, too big or not UTF-8;
alias bombs, deep nesting and values YAML cannot build are refused before they cost time.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import Any

import yaml

from distillcli.errors import RecipeError


def short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _parse_value(text: str, key: str = "") -> Any:
    """A --set value as YAML (``1``, ``[1, 2]``, ``{a: 1}``); text that is not YAML stays text."""
    if text == "":
        return ""
    try:
        return _load_bounded_yaml(text)
    except yaml.YAMLError:
        return text
    except _TooComplex as e:
        raise RecipeError([f"--set {key}: the value is {e}"], source="--set",
                          hint="give a plain value, e.g. --set steps.0.epochs=1") from None


def apply_override(raw: dict[str, Any], assignment: str) -> None:
    """Apply one ``a.b.c=value`` to the raw recipe. ``steps.0.epochs`` reaches into the step's options."""
    if "=" not in assignment:
        raise RecipeError([f"--set {_clip(assignment)!r}: expected KEY=VALUE, e.g. steps.0.epochs=1"], source="--set")
    dotted, _, text = assignment.partition("=")
    dotted = dotted.strip()
    parts = [p for p in dotted.split(".") if p]
    if not parts:
        raise RecipeError([f"--set {_clip(assignment)!r}: empty key"], source="--set")
    if len(parts) > _MAX_DEPTH:
        raise RecipeError([f"--set {_clip(dotted)}: the key is nested too deeply ({len(parts)} levels)"],
                          source="--set")
    node: Any = raw
    for i, part in enumerate(parts[:-1]):
        node = _descend(node, part, parts[i + 1], dotted)
    last = parts[-1]
    if isinstance(node, list):
        index = _index(node, last, dotted)
        node[index] = _parse_value(text, _clip(dotted))
    elif isinstance(node, dict):
        node[last] = _parse_value(text, _clip(dotted))
    else:
        parent = ".".join(parts[:-1])
        raise RecipeError([f"--set {_clip(dotted)}: {_clip(parent)} holds the value {short(node)}, "
                           f"not a mapping, so it has no key {_clip(last)!r}"], source="--set",
                          hint=f"set {_clip(parent)} itself, e.g. --set {_clip(parent)}=VALUE")


def _descend(node: Any, part: str, following: str, dotted: str) -> Any:
    if isinstance(node, list):
        child = node[_index(node, part, dotted)]
        # a step item {kind: options}: `steps.0.epochs` means `steps.0.<kind>.epochs`
        if isinstance(child, dict) and len(child) == 1 and following not in child:
            kind = next(iter(child))
            if child[kind] is None:
                child[kind] = {}
            return child[kind]
        return child
    if not isinstance(node, dict):
        raise RecipeError([f"--set {_clip(dotted)}: {_clip(part)!r} is inside a value that is not a mapping"],
                          source="--set")
    if node.get(part) is None:
        node[part] = {}
    return node[part]


def normalise_steps(raw: dict[str, Any]) -> None:
    """`- evaluate:` with no options is YAML null; treat it as {}."""
    steps = raw.get("steps")
    if isinstance(steps, list):
        for item in steps:
            if isinstance(item, dict) and len(item) == 1:
                kind = next(iter(item))
                if item[kind] is None:
                    item[kind] = {}


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    text = _read_recipe_text(path)
    shown = _clip(str(path))
    try:
        raw = _load_bounded_yaml(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise RecipeError([f"{shown}: not valid YAML{where}: {getattr(e, 'problem', e)}"], source="recipe",
                          hint="fix the YAML syntax (indentation, colons, quotes)") from None
    except _TooComplex as e:
        raise RecipeError([f"{shown}: the YAML is {e}"], source="recipe",
                          hint="write the recipe out plainly: a few levels of keys, anchors (&) and aliases (*) "
                               "used sparingly") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise RecipeError([f"{shown}: the top level must be a mapping of keys (name, data, steps ...)"],
                          source="recipe")
    return raw


def with_lines(problems: list[str], path: Path) -> list[str]:
    """``problems`` (each starting with its key path, ``steps[1].prune: ...``) prefixed with the line
    of that key in the recipe file, or of its closest enclosing key (a missing key's section), in
    the file's order; a problem with no line in the file (a --set key) comes last."""
    lines = _key_lines(path)
    found: list[tuple[float, str]] = []
    for problem in problems:
        where = problem.partition(": ")[0]
        while where and where not in lines:
            where = where[:max(where.rfind("."), where.rfind("["), 0)]
        found.append((lines[where], f"line {lines[where]}: {problem}") if where else (float("inf"), problem))
    return [text for _, text in sorted(found, key=lambda item: item[0])]


def _key_lines(path: Path) -> dict[str, int]:
    """{key path as problems write it (``steps[1].prune.sparsity``): its 1-based line} for the file."""
    try:
        loader = _BoundedLoader(_read_recipe_text(path))
        try:
            root = loader.get_single_node()
        finally:
            loader.dispose()
    except (RecipeError, yaml.YAMLError, _TooComplex, RecursionError):
        return {}
    lines: dict[str, int] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, yaml.MappingNode):
            children = [(f"{prefix}.{k.value}" if prefix else str(k.value), k, v) for k, v in node.value]
        elif isinstance(node, yaml.SequenceNode):
            children = [(f"{prefix}[{i}]", item, item) for i, item in enumerate(node.value)]
        else:
            return
        for where, marked, value in children:
            lines.setdefault(where, marked.start_mark.line + 1)
            walk(value, where)

    walk(root, "")
    return lines


_MAX_BYTES = 1 << 20  # a recipe file, or a --set value
_MAX_DEPTH = 32  # levels of nesting (aliases expanded)
_MAX_NODES = 10_000  # YAML values, counting every alias as a copy of what it names (recipes hold ~100)


class _TooComplex(Exception):
    """The YAML would expand into too much data (aliases) or nest too deeply."""


def _clip(text: str, limit: int = 120) -> str:
    """``text`` shortened for a message, control characters escaped."""
    if not text.isprintable():
        text = ascii(text)[1:-1]
    return text if len(text) <= limit else text[: limit - 40] + "..." + text[-37:]


def _index(items: list[Any], part: str, dotted: str) -> int:
    if not re.fullmatch(r"[0-9]{1,9}", part):
        raise RecipeError([f"--set {_clip(dotted)}: {_clip(part, 20)!r} is not an index into a list "
                           f"(0 .. {len(items) - 1})"], source="--set")
    if int(part) >= len(items):
        raise RecipeError([f"--set {_clip(dotted)}: index {part} is out of range "
                           f"(the list has {len(items)} items)"], source="--set")
    return int(part)


def _read_recipe_text(path: Path) -> str:
    """The file's text, refusing what is not a readable UTF-8 file of a sane size."""
    shown = _clip(str(path))

    def fail(problem: str, hint: str = "check the path and give a recipe file (YAML)") -> RecipeError:
        return RecipeError([f"{shown}: {problem}"], source="recipe", hint=hint)

    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused below.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise fail("file not found", f"check the path, or write a starter recipe there: distill init {shown}; "
                                     "shipped recipes are in recipes/ (e.g. recipes/quickstart.yaml)") from None
    except IsADirectoryError:
        raise fail("is a directory, not a recipe file") from None
    except (OSError, ValueError) as e:  # ValueError: a NUL byte in the path
        raise fail(f"cannot open the file ({getattr(e, 'strerror', None) or e})") from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise fail("is a directory, not a recipe file")
        if not stat.S_ISREG(info.st_mode):
            raise fail("is not a regular file (a device, pipe or socket)")
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read(_MAX_BYTES + 1)
    except OSError as e:
        raise fail(f"cannot read the file ({e.strerror or e})") from None
    finally:
        os.close(fd)
    if len(data) > _MAX_BYTES:
        raise fail(f"is larger than {_MAX_BYTES >> 20} MiB, far more than any recipe",
                   "check that this is the recipe file you meant")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise fail(f"is not UTF-8 text (byte {e.start} cannot be decoded); is it a binary or UTF-16 file?",
                   "save the recipe as UTF-8 text") from None


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader that measures each node as it is composed: its size with every alias
    expanded, and its depth. Alias bombs ("billion laughs") and deep nesting are refused
    before anything is constructed; expanding them would take hours and gigabytes."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._measured: dict[int, tuple[int, int]] = {}  # id(node) -> (expanded size, depth)
        self._level = 0
        self._composed = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            node = super().compose_node(parent, index)
            if id(node) not in self._measured:
                raise _TooComplex("self-referential (an alias inside the value its anchor names)")
            return node
        self._level += 1
        self._composed += 1
        if self._composed > _MAX_NODES:  # stop parsing early: pure-Python YAML reads ~50k values a second
            raise _TooComplex(f"too large (more than {_MAX_NODES} values)")
        if self._level > _MAX_DEPTH:
            raise _TooComplex(f"nested too deeply (more than {_MAX_DEPTH} levels)")
        try:
            node = super().compose_node(parent, index)
        finally:
            self._level -= 1
        children: list[Any] = []
        if isinstance(node, yaml.SequenceNode):
            children = node.value
        elif isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        measured = [self._measured[id(c)] for c in children]
        size = 1 + sum(m[0] for m in measured)
        depth = 1 + max((m[1] for m in measured), default=0)
        if size > _MAX_NODES:
            raise _TooComplex(f"too large once its aliases are expanded (more than {_MAX_NODES} values)")
        if depth > _MAX_DEPTH:
            raise _TooComplex(f"nested too deeply once its aliases are expanded (more than {_MAX_DEPTH} levels)")
        self._measured[id(node)] = (size, depth)
        return node


def _load_bounded_yaml(text: str) -> Any:
    if len(text) > _MAX_BYTES:
        raise _TooComplex(f"larger than {_MAX_BYTES >> 20} MiB")
    loader = _BoundedLoader(text)
    try:
        return _text_keys(loader.get_single_data())
    except RecursionError:
        raise _TooComplex("nested too deeply") from None
    except (ValueError, OverflowError) as e:  # e.g. a date 2024-13-45, an integer of 5000 digits
        raise yaml.constructor.ConstructorError(None, None, f"a value cannot be read ({_clip(str(e), 80)})") from None
    finally:
        loader.dispose()


def _text_keys(value: Any) -> Any:
    """Every mapping key as text: recipe keys are names, and YAML reads ``1:`` or ``null:`` as
    a number or None, which error messages and did-you-mean suggestions cannot handle."""
    if isinstance(value, dict):
        return {k if isinstance(k, str) else str(k): _text_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_text_keys(v) for v in value]
    return value
