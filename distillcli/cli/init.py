"""`distill init [PATH] --template NAME`: write a commented starter recipe (the templates: templates.py)."""

from __future__ import annotations

from pathlib import Path

import typer

from distillcli.cli.app import app
from distillcli.cli.options import ForceOpt, guarded, refuse_overwrite
from distillcli.output import Output
from distillcli.cli.templates import TEMPLATES


@app.command()
@guarded
def init(path: Path = typer.Argument(Path("recipe.yaml"), metavar="PATH", help="where to write the recipe"),
         template: str = typer.Option("digits", "--template", help=" | ".join(f"{name} ({t.summary})"
                                                                              for name, t in TEMPLATES.items())),
         force: bool = ForceOpt) -> None:
    """Write a commented starter recipe to edit: digits data by default, or another --template.

    The digits recipe validates and runs offline; the others do once their data (and weights) are where
    their comments say.

    Example: distill init my.yaml --template cifar && distill validate my.yaml
    """
    import re
    from string import Template

    from distillcli.atomic_write import write_text
    from distillcli.errors import OptionError
    from distillcli.registry import closest

    chosen = TEMPLATES.get(template)
    if chosen is None:
        guess = closest(template, list(TEMPLATES))
        raise OptionError(f"--template {template!r} is not a template",
                          f"did you mean {guess!r}?" if guess else f"choose one of {', '.join(TEMPLATES)}")
    refuse_overwrite(path, force)
    stem = re.sub(r"[^A-Za-z0-9._-]", "-", path.stem) or "starter"
    write_text(path, Template(chosen.text).substitute(file=path, stem=stem))
    first = f"\nfirst: {chosen.before}" if chosen.before else ""
    Output().info(f"wrote {path} ({template}: {chosen.summary}){first}\n"
                  f"next: distill validate {path} && distill run {path}")
