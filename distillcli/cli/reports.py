"""Commands on run directories' reports: rebuild them, compare runs."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from distillcli.cli.app import app
from distillcli.cli.options import ForceOpt, JsonOpt, guarded, refuse_overwrite
from distillcli.output import Output


@app.command()
@guarded
def report(run_dir: Path = typer.Argument(..., metavar="RUN_DIR", help="a run directory written by `distill run`"),
           as_json: bool = JsonOpt) -> None:
    """Rebuild report.md and report.html from the run's metrics.json (and recipe.yaml).

    Example: distill report runs/quickstart-20261201-120000
    """
    from distillcli.report import load_record, write_reports

    written = write_reports(load_record(run_dir), run_dir, ["md", "html"])
    Output(as_json).result({"run_dir": str(run_dir), "written": [str(p) for p in written]},
                           "\n".join(f"wrote {p}" for p in written))


@app.command()
@guarded
def compare(run_dirs: list[Path] = typer.Argument(..., metavar="RUN_DIR", help="run directories written by `distill run`"),
            max_drop: float = typer.Option(1.0, "--max-drop", min=0.0, help="the most top-1 (percentage points) "
                                           "a run may lose against --baseline"),
            baseline: Optional[str] = typer.Option(None, "--baseline", metavar="RUN_DIR_OR_LABEL", help="what "
                                                   "--max-drop is measured against: the final model of one of the "
                                                   "runs (its directory or label), or 'teacher': the best baseline "
                                                   "the runs recorded (their teacher or starting model)",
                                                   show_default="the first run given"),
            objective: str = typer.Option("latency", "--objective", help="what the best run has least of: "
                                          "latency | size | macs"),
            out: Path = typer.Option(Path("compare"), "--out", help="folder for compare.html and compare.md"),
            force: bool = ForceOpt, as_json: bool = JsonOpt) -> None:
    """Compare the final student model of several runs; pick the best one within --max-drop of --baseline.

    Example: distill compare runs/kd-* runs/prune-* --max-drop 1 --objective latency
    """
    from rich.table import Table

    from distillcli.atomic_write import write_text
    from distillcli.errors import OptionError
    from distillcli.report.compare import OBJECTIVES, compare_runs, render_html, render_md, rows, to_json, verdict
    from distillcli.report.numbers import pct

    if objective not in OBJECTIVES:
        raise OptionError(f"--objective {objective!r} is not known", f"choose one of {', '.join(OBJECTIVES)}")
    refuse_overwrite(out, force)
    result = compare_runs(run_dirs, max_drop, objective, baseline)
    files = {"html": out / "compare.html", "md": out / "compare.md"}
    write_text(files["html"], render_html(result))
    write_text(files["md"], render_md(result))
    head, body = rows(result)
    table = Table(title=f"compare ({objective}, --max-drop {max_drop:g} against {result.reference_from}, "
                        f"top-1 {pct(result.reference)} %)")
    for i, col in enumerate(head):
        table.add_column(col, justify="right" if 3 <= i <= 8 else "left")
    for row in body:
        table.add_row(*row)
    o = Output(as_json)
    o.result({**to_json(result), "files": {k: str(v) for k, v in files.items()}}, table)
    o.info(f"{verdict(result)}\nwrote {files['html']} and {files['md']}")
