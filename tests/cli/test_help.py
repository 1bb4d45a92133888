"""Help a user can trust: flags look like flags."""

from __future__ import annotations

import typer.main
from typer.testing import CliRunner

from distillcli.cli import app


def test_boolean_flags_show_no_value_placeholder() -> None:
    runner = CliRunner()
    for name in sorted(typer.main.get_command(app).commands):
        out = runner.invoke(app, [name, "--help"], terminal_width=200).output
        shown = [line for line in out.splitlines() if "<bool>" in line and "--help" not in line]
        assert not shown, (name, shown)  # `--force <bool>` reads as if it took `--force true`
