"""A run's reports: metrics.json (the record), report.md and report.html, written atomically."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

from pydantic import ValidationError

from distillcli.atomic_write import write_json, write_text
from distillcli.errors import RunDirError
from distillcli.record import RunRecord

FILES = {"json": "metrics.json", "md": "report.md", "html": "report.html"}


def read_recipe_text(run_dir: Path) -> str | None:
    path = run_dir / "recipe.yaml"
    return path.read_text(encoding="utf-8") if path.is_file() else None


def write_reports(record: RunRecord, run_dir: Path, formats: Iterable[str]) -> list[Path]:
    """Write the requested formats (json, md, html) into ``run_dir``; returns the paths written.
    metrics.json goes first, so a report that fails to render never costs the record."""
    wanted = set(formats)
    written = []
    if "json" in wanted:
        write_json(run_dir / FILES["json"], record.to_json())
        written.append(run_dir / FILES["json"])
    if "md" in wanted:
        from distillcli.report.markdown import render

        write_text(run_dir / FILES["md"], render(record))
        written.append(run_dir / FILES["md"])
    if "html" in wanted:
        from distillcli.report.html import render_html

        write_text(run_dir / FILES["html"], render_html(record, read_recipe_text(run_dir)))
        written.append(run_dir / FILES["html"])
    return written


def load_record(run_dir: Path) -> RunRecord:
    """The record in ``run_dir``/metrics.json; a missing or unreadable one is a RunDirError."""
    path = run_dir / FILES["json"]
    if not run_dir.is_dir():
        raise RunDirError(f"{run_dir} is not a directory", "give a run directory written by `distill run`")
    if not path.is_file():
        raise RunDirError(f"{run_dir} holds no metrics.json", "give a run directory written by `distill run` "
                          "with report.formats including json")
    try:
        return RunRecord.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except ValidationError as e:
        err = e.errors()[0]
        more = f" (and {e.error_count() - 1} more problems)" if e.error_count() > 1 else ""
        detail = f"{'.'.join(map(str, err['loc'])) or 'top level'}: {err['msg']}{more}"
    except ValueError as e:  # JSONDecodeError and UnicodeDecodeError
        detail = f"not JSON ({e})"
    raise RunDirError(f"{path} is not a valid run record: {detail}",
                      "it is corrupt or was written by another version of distillcli; rerun the recipe "
                      "(or `distill resume` the run) to write it again")
