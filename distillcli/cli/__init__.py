"""The command tree: ``app`` (cli.app) and one module per command group, each registering its
commands on it. Every command is a thin call into the library; errors become one message on stderr
and an exit code (cli.options.guarded): 0 ok, 1 a failure while running, 2 bad input, 3 a CI gate
failed, 130 interrupted."""

from distillcli.cli.app import app

# each registers its commands; `distill --help` lists them in this order
from distillcli.cli import run, recipes, init, listing, files, sensitivity, importer  # noqa: E402,F401,I001
from distillcli.cli import reports, cache, auto, doctor  # noqa: E402,F401,I001

__all__ = ["app", "main"]


def main() -> None:
    from distillcli.allocator import keep_freed_memory

    keep_freed_memory()
    app()
