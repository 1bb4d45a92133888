"""The whole `distill auto`: search, then measure the chosen model once on the test split, then write."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from distillcli.auto.config import AutoConfig
from distillcli.auto.final import measure_final, publish_best
from distillcli.auto.report import write_outputs
from distillcli.auto.search import Search, SearchResult
from distillcli.progress import Progress


def run_auto(base: dict[str, Any], cfg: AutoConfig, out: Path, progress: Progress,
             force: bool = False) -> tuple[SearchResult, dict[str, Any] | None, dict[str, Any]]:
    """(the search, the chosen model's test-split measures or None, the summary written to auto.json)."""
    result = Search(base, cfg, out, progress, force).run()
    test, files = None, {}
    if result.chosen is not None:
        progress.message(f"measuring the chosen candidate (trial {result.chosen.number}) on the test split")
        test = measure_final(result, result.path(result.chosen.get("model_file")))
        recipe, model = publish_best(result)
        files = {"best_recipe": recipe, "best_model": model}
    return result, test, write_outputs(result, test, files)
