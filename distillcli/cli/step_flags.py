"""Command-line flags made from a step's options model, so that a file command declares no step option
twice: a flag's help is its field's description, its shown default the model's default, and a flag the
user does not give is not passed on, so the model's own default applies."""

from __future__ import annotations

import functools
import inspect
import re
import types
from typing import Annotated, Any, Callable, Literal, Optional, TypeVar, Union, get_args, get_origin

import typer
from pydantic import BaseModel
from pydantic.fields import FieldInfo

F = TypeVar("F", bound=Callable[..., Any])
# "...; default: X" or "... (default: X)": what a default of None means, shown as the default, not as help
_SAYS_DEFAULT = re.compile(r"(?:; | \()default: (.+?)\)?$")


def field_at(config: type[BaseModel], path: str) -> FieldInfo:
    """The field at a dotted path: ``finetune.epochs`` is ``epochs`` of the model under ``finetune``."""
    *outer, name = path.split(".")
    for key in outer:
        config = config.model_fields[key].annotation  # type: ignore[assignment]
    return config.model_fields[name]


def _bare(annotation: Any) -> Any:
    """``X | None`` -> X; ``Annotated[X, ...]`` -> X."""
    if get_origin(annotation) in (Union, types.UnionType):
        kept = tuple(a for a in get_args(annotation) if a is not type(None))
        annotation = kept[0] if len(kept) == 1 else Union[kept]
    return get_args(annotation)[0] if get_origin(annotation) is Annotated else annotation


def _numbers(field: FieldInfo) -> bool:
    """A list of numbers: given comma-separated (--ratios 0.25,0.5), where a list of names repeats the flag."""
    bare = _bare(field.annotation)
    return get_origin(bare) is list and _bare(get_args(bare)[0]) in (int, float)


def _option(flag: str, field: FieldInfo) -> tuple[Any, Any]:
    """The command parameter's annotation and Typer option for a field."""
    said = _SAYS_DEFAULT.search(field.description or "")
    text = (field.description or "")[:said.start() if said else None]
    if not text:
        raise TypeError(f"{flag}: its field has no description, which is the flag's help")
    default = field.get_default(call_default_factory=True)
    shown: Any = said.group(1) if said and default is None else True
    bare = _bare(field.annotation)
    if bare is bool:
        decl = flag if default is False else f"{flag}/--no-{flag[2:]}"
        return Optional[bool], typer.Option(default, decl, metavar="", help=text, show_default=shown)
    if _numbers(field):
        return Optional[str], typer.Option(",".join(map(str, default)) if default else None, flag,
                                           help=f"{text}, comma-separated", show_default=shown)
    if get_origin(bare) is list:
        return Optional[list[str]], typer.Option(None, flag, help=f"{text} (repeatable)")
    literal = get_origin(bare) is Literal
    kind = str if literal or bare not in (int, float) else bare
    return Optional[kind], typer.Option(default, flag, help=text, show_default=shown,
                                        metavar="|".join(map(str, get_args(bare))) if literal else None)


def step_flags(config: type[BaseModel], *paths: str, **named: str) -> Callable[[F], F]:
    """Replace the command's ``options`` parameter by one flag per field of ``config`` at ``paths``
    (``round_to`` -> ``--round-to``, ``finetune.epochs`` -> ``--finetune-epochs``); ``named`` gives a flag
    its own name (``lr="finetune.lr"`` -> ``--lr``).
    The command receives the flags the user gave as ``options``: a dict of the model's (nested) keys."""
    flags = {path.replace(".", "_"): path for path in paths} | named
    fields = {name: field_at(config, path) for name, path in flags.items()}

    def decorate(fn: F) -> F:
        made = []
        for name, path in flags.items():
            annotation, option = _option(f"--{name.replace('_', '-')}", fields[name])
            made.append(inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=option,
                                          annotation=annotation))
        params = list(inspect.signature(fn, eval_str=True).parameters.values())
        at = [p.name for p in params].index("options")
        params[at:at + 1] = made
        params.insert(0, inspect.Parameter("context", inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                           annotation=typer.Context))  # Typer passes it: which flags were given

        @functools.wraps(fn)
        def command(context: typer.Context | None = None, **kwargs: Any) -> Any:
            options: dict[str, Any] = {}
            for name, path in flags.items():
                value = kwargs.pop(name, None)
                if value is None or (context and context.get_parameter_source(name).name == "DEFAULT"):
                    continue  # not given: the model's default applies
                *outer, key = path.split(".")
                inner = options
                for part in outer:
                    inner = inner.setdefault(part, {})
                inner[key] = [v.strip() for v in value.split(",") if v.strip()] if _numbers(fields[name]) else value
            return fn(**kwargs, options=options)

        command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in params}
        return command  # type: ignore[return-value]

    return decorate

