"""Recipe problems as the user reads them: pydantic's errors turned into ``path: what is wrong``
(with did-you-mean for a misspelt key or step), and the cross-field problems of a recipe whose
key errors are repaired, so that every mistake comes in one round."""

from __future__ import annotations

import copy
import types
import typing
from typing import Annotated, Any, Union

from pydantic import BaseModel, ValidationError

from distillcli.recipe.checks import semantic_problems
from distillcli.recipe.model import step_kind
from distillcli.recipe.yaml_file import short
from distillcli.registry import closest
from distillcli.steps import STEPS


def _path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _collapse(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """Drop the union tag pydantic repeats in step locations: steps.1.distill.distill.x."""
    out: list[Any] = []
    for part in loc:
        if out and part == out[-1] and isinstance(part, str):
            continue
        out.append(part)
    return tuple(out)


def _unwrap(tp: Any) -> list[Any]:
    origin = typing.get_origin(tp)
    if origin is Annotated:
        return _unwrap(typing.get_args(tp)[0])
    if origin is Union or origin is types.UnionType:
        return [m for a in typing.get_args(tp) for m in _unwrap(a)]
    return [tp]


def _keys_at(root: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """Valid keys of the mapping at ``loc`` (for did-you-mean)."""
    types: list[Any] = [root]
    for part in loc:
        nxt: list[Any] = []
        for tp in types:
            for t in _unwrap(tp):
                origin = typing.get_origin(t)
                if isinstance(t, type) and issubclass(t, BaseModel) and isinstance(part, str):
                    if part in t.model_fields:
                        nxt.append(t.model_fields[part].annotation)
                    for f in t.model_fields.values():  # step wrappers: {kind: config}
                        if f.alias == part:
                            nxt.append(f.annotation)
                elif origin is list and isinstance(part, int):
                    nxt.append(typing.get_args(t)[0])
                elif origin is dict and isinstance(part, str):
                    nxt.append(typing.get_args(t)[1])
        types = nxt
    keys: list[str] = []
    for tp in types:
        for t in _unwrap(tp):
            if isinstance(t, type) and issubclass(t, BaseModel):
                keys += [f.alias or k for k, f in t.model_fields.items()]
    return keys


def problem_text(err: dict[str, Any], root: type[BaseModel]) -> str:
    loc = _collapse(tuple(err["loc"]))
    where = _path(loc)
    kind = err["type"]
    if kind == "extra_forbidden":
        key = loc[-1]
        guess = closest(str(key), _keys_at(root, loc[:-1]))
        tail = f"; did you mean {guess!r}?" if guess else f"; valid keys: {', '.join(_keys_at(root, loc[:-1]))}"
        return f"{where}: unknown key{tail}"
    if kind == "step_kind":
        value = err["input"]
        name = step_kind(value)
        if name is None:
            return f"{where}: a step must be a mapping with one key, the step kind (got {short(value)}); " \
                   f"e.g. `- distill: {{epochs: 1}}`"
        guess = closest(str(name), STEPS.names())
        tail = f"did you mean {guess!r}?" if guess else f"known steps: {', '.join(STEPS.names())}"
        return f"{where}: unknown step {name!r}; {tail}"
    if kind == "missing":
        return f"{where}: required key is missing"
    msg = err["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    return f"{where}: {msg} (got {short(err.get('input'))})"


_REPAIRS = 4  # rounds of repair: dropping a bad key can wake a check of the whole section


def later_problems(raw: dict[str, Any], error: ValidationError, found: list[str], model: type[BaseModel]) -> list[str]:
    """The cross-field problems a recipe would show once its key errors are fixed, so that all
    mistakes come in one round: repair what failed and check again, until the rest validates.
    A key that already has a problem gets no second one."""
    repaired = copy.deepcopy(raw)
    for _ in range(_REPAIRS):
        if not _repair(repaired, error):
            return []
        try:
            recipe = model.model_validate(repaired)
        except ValidationError as e:
            error = e
            continue
        except (TypeError, KeyError, IndexError):
            return []
        named = {p.partition(": ")[0] for p in found}
        return [p for p in semantic_problems(recipe) if p.partition(": ")[0] not in named]
    return []


def _repair(raw: dict[str, Any], error: ValidationError) -> bool:
    """Drop each offending key (its default applies); a step that fails as a whole becomes
    `evaluate: {}`, keeping the indices of the others. False: nothing left to repair."""
    changed = False
    for err in error.errors():
        loc = _collapse(tuple(err["loc"]))
        if loc[:1] == ("steps",) and len(loc) in (2, 3) and _has(raw.get("steps"), loc[1]):
            changed |= raw["steps"][loc[1]] != {"evaluate": {}}
            raw["steps"][loc[1]] = {"evaluate": {}}  # an unknown step, or options wrong as a whole
            continue
        node: Any = raw
        for part in loc[:-1]:
            node = node[part] if _has(node, part) else None
        if isinstance(node, dict) and loc and loc[-1] in node:
            del node[loc[-1]]
            changed = True
    return changed


def _has(node: Any, part: Any) -> bool:
    return (isinstance(node, dict) and part in node) or (isinstance(node, list) and isinstance(part, int)
                                                          and 0 <= part < len(node))
