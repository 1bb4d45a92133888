"""`distill list`: what recipes can name, read from the registries (without torch, but for
``--details``), with each one's options."""

from __future__ import annotations

import types
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import typer

from distillcli.cli.app import app
from distillcli.cli.options import JsonOpt, guarded
from distillcli.output import Output


@app.command("list")
@guarded
def list_(what: str = typer.Argument(..., metavar="WHAT", help="models | datasets | steps | losses | importances | formats"),
          pattern: str = typer.Argument("*", metavar="PATTERN", help="a part of the name, or a wildcard pattern on the full name, e.g. "
                                                  "resnet, 'resnet*' or 'timm:mobilenet*'"),
          details: bool = typer.Option(False, "--details", metavar="", help="models: parameters and MACs of each (10 classes, "
                                       "3x32x32 input)"),
          options: bool = typer.Option(False, "--options", metavar="", help="the options each takes, with types and defaults"),
          as_json: bool = JsonOpt) -> None:
    """List what recipes can name: models (torchvision:<name>, timm:<name> too), datasets, steps, losses,
    pruning importances, model-file formats. Exit 1 when nothing matches.

    Examples: distill list models resnet --details;  distill list steps prune --options
    """
    from distillcli.errors import NothingFound, OptionError
    from distillcli.registry import closest

    sources = _listings()
    if what not in sources:
        guess = closest(what, list(sources))
        raise OptionError(f"cannot list {what!r}", f"did you mean {guess!r}?" if guess else f"choose one of {', '.join(sources)}")
    if details and what != "models":
        raise OptionError(f"--details is for models, not {what}", f"run: distill list {what} {pattern!r}")
    names, describe = sources[what]
    found = names(pattern)
    if options and pattern in found:
        found = [pattern]  # the one named, not every name containing it
    if not found:
        raise NothingFound(f"no {what} match {pattern!r}", f"`distill list {what}` shows them all")
    if details:
        _list_model_details(found, as_json)
    elif options:
        rows = {name: describe(name) for name in found}
        Output(as_json).result({what: rows}, "\n\n".join(f"{n}\n" + "\n".join(
            f"  {k}: {v['type']} = {v['default']}  {v['help']}" for k, v in opts.items()) if opts else f"{n}\n  (no options)"
            for n, opts in rows.items()))
    else:
        Output(as_json).result({what: found}, "\n".join(found))


def _listings() -> dict[str, tuple[Any, Any]]:
    """What `distill list` shows: per kind, (names matching a pattern, the options of one name)."""
    from distillcli.compress.choices import IMPORTANCES
    from distillcli.data.config import DataConfig
    from distillcli.data.registry import DATASETS
    from distillcli.losses.registry import LOSSES
    from distillcli.modelfile.formats import FORMATS
    from distillcli.models.sources import model_names, model_options
    from distillcli.steps import STEPS

    def none(name: str) -> dict[str, Any]:
        return {}

    return {"models": (model_names, lambda n: _fields(model_options(n))),
            "datasets": (DATASETS.names, lambda n: {k: _fields(DataConfig)[k] for k in DATASETS.get(n).keys}),
            "steps": (STEPS.names, lambda n: _fields(STEPS.get(n).config)),
            "losses": (LOSSES.names, lambda n: _fields(LOSSES.get(n).options)),
            "importances": (IMPORTANCES.names, none), "formats": (FORMATS.names, none)}


def _fields(model: Any) -> dict[str, dict[str, str]]:
    """Each field of an options model: its type, default and description, as text."""
    out = {}
    for name, f in model.model_fields.items():
        shown = f.alias or name
        default = "(required)" if f.is_required() else repr(f.get_default(call_default_factory=True))
        out[shown] = {"type": _type_text(f.annotation), "default": default, "help": f.description or ""}
    return out


def _type_text(annotation: Any) -> str:
    """int, float | None, 'A' | 'B' ... as a user reads them."""
    args = get_args(annotation)
    if get_origin(annotation) is Literal:
        return " | ".join(repr(a) for a in args)
    if get_origin(annotation) in (Union, types.UnionType):
        return " | ".join(_type_text(a) for a in args)
    if get_origin(annotation) is Annotated:
        return _type_text(args[0])
    return "None" if annotation is type(None) else getattr(annotation, "__name__", str(annotation).replace("typing.", ""))


def _list_model_details(names: list[str], as_json: bool) -> None:
    from rich.markup import escape
    from rich.table import Table

    from distillcli.models.catalog import INPUT_SHAPE, NUM_CLASSES, model_details
    from distillcli.report.markdown import human_count

    rows = [model_details(name) for name in names]
    shape = "x".join(map(str, INPUT_SHAPE))
    title = f"models at CIFAR size ({NUM_CLASSES} classes, {shape} input)"
    table = Table(title=title, min_width=len(title), caption="-: cannot be built or run at that size")
    for col in ("model", "params", "MACs"):
        table.add_column(col, justify="left" if col == "model" else "right")
    for row in rows:
        table.add_row(escape(row["name"]), human_count(row["params"]), human_count(row["macs"]))
    Output(as_json).result({"models": rows, "num_classes": NUM_CLASSES, "input_shape": list(INPUT_SHAPE)}, table)
