"""The command tree's root: the Typer app every command module registers on, and ``--version``."""

from __future__ import annotations

import sys

import typer

app = typer.Typer(
    help="Make PyTorch image models smaller and faster: distillation, pruning, quantization, export.\n\n"
         "Start with:  distill init my.yaml && distill run my.yaml\n\n"
         "Exit codes: 0 ok, 1 failure while running, 2 bad input, 3 a CI gate failed, 130 interrupted.",
    no_args_is_help=True, pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 120},
)


def _version(value: bool) -> None:
    if value:
        from distillcli import __version__

        sys.stdout.write(f"distill {__version__}\n")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", metavar="", callback=_version, is_eager=True,
                                       help="print the version and exit")) -> None:
    """Make PyTorch image models smaller and faster."""
