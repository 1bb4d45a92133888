"""What commands print: a human table on stdout, or one JSON object with --json."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from distillcli.report.markdown import human_bytes, human_count


class Output:
    def __init__(self, as_json: bool = False, quiet: bool = False) -> None:
        self.as_json, self.quiet = as_json, quiet
        self.console = Console(width=None if sys.stdout.isatty() else 160)

    def result(self, obj: dict[str, Any], table: Table | str | None = None) -> None:
        if self.as_json:
            sys.stdout.write(json.dumps(obj, default=str) + "\n")
        elif isinstance(table, str):
            self.console.print(table, markup=False, highlight=False)  # "[student]" is text, not a style
        elif table is not None:
            self.console.print(table)

    def info(self, text: str) -> None:
        if not self.as_json and not self.quiet:
            self.console.print(text, markup=False, highlight=False)


def measures_table(title: str, rows: list[tuple[str, dict[str, Any]]]) -> Table:
    """One row per model: accuracy, size, cost and latency."""
    batches = sorted({b for _, m in rows for b in m.get("latency_ms", {})}, key=int)
    table = Table(title=title)
    for col in ["model", "top-1 %", "top-5 %", "loss", "params", "MACs", "file"] + [f"ms b{b}" for b in batches]:
        table.add_column(col, justify="left" if col == "model" else "right")
    for name, m in rows:
        def f(v: Any, fmt: str = "{:.2f}") -> str:
            return "-" if v is None else fmt.format(v)

        table.add_row(escape(name), f(m.get("top1")), f(m.get("top5")), f(m.get("loss"), "{:.4f}"),
                      human_count(m.get("params")), human_count(m.get("macs")), human_bytes(m.get("file_bytes")),
                      *[f(m.get("latency_ms", {}).get(b)) for b in batches])
    return table
