"""Commands on a model file (`distill eval|prune|quantize|export|sensitivity FILE`) as
one-step recipes: the file's header says its architecture and the data it was trained on,
options may replace the data, and the recipe runs through the one engine (Pipeline), so
these commands measure, save and report exactly as the same step inside a recipe does."""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from distillcli.data.config import DataConfig
from distillcli.errors import DataError
from distillcli.facts import StepFacts
from distillcli.modelfile import read_header
from distillcli.models.handle import ModelHandle
from distillcli.progress import Progress
from distillcli.recipe import RecipeBase, validate_raw
from distillcli.record import Measures, RunRecord
from distillcli.steps import StepConfig


def data_options(path: Path, data: str | None, data_root: str | None, **overrides: Any) -> dict[str, Any]:
    """The data the model was trained on, with command-line replacements applied."""
    defaults = DataConfig().model_dump()
    recorded = {k: v for k, v in dict(read_header(path).get("data") or {}).items()
                if k == "name" or v != defaults.get(k)}  # only what was chosen: defaults may not apply
    if data is not None and data != recorded.get("name"):
        recorded = {"name": data}  # another dataset: none of the recorded options apply
    if not recorded.get("name"):
        raise DataError(f"{path} does not record which data it was trained on",
                        "give the data with --data NAME (and --data-root DIR)")
    if data_root is not None:
        recorded["root"] = data_root
    recorded.update({k: v for k, v in overrides.items() if v is not None})
    recorded.pop("download", None)
    return recorded


def file_recipe(path: Path, kind: str, options: StepConfig, *, data: str | None = None, data_root: str | None = None,
                device: str = "auto", seed: int = 0, latency: bool = True, repeats: int = 10,
                threads: int | None = None, trust_code: bool = False, **data_overrides: Any) -> RecipeBase:
    """The one-step recipe that applies step ``kind`` to the model in ``path``."""
    raw = {
        "name": re.sub(r"[^A-Za-z0-9._-]", "_", f"{kind}-{path.stem}")[:100],
        "seed": seed, "device": device, "threads": threads, "trust_code": trust_code,
        "data": data_options(path, data, data_root, **data_overrides),
        "student": {"checkpoint": str(path)},
        "steps": [{kind: options.model_dump(mode="json", by_alias=True, exclude_unset=True)}],
        "report": {"latency": latency, "latency_batches": [1, 64], "latency_repeats": repeats, "save_models": False},
    }
    return validate_raw(raw, source=f"{kind} {path}")


@dataclass
class FileRun:
    record: RunRecord
    output: Path | None
    model: ModelHandle

    @property
    def before(self) -> Measures | None:
        base = self.record.baseline
        return base.measures if base is not None and base.source == "start" else None

    @property
    def after(self) -> Measures:
        return self.record.steps[-1].measures

    @property
    def info(self) -> StepFacts | None:
        return self.record.steps[-1].info


def run_on_file(path: Path, kind: str, options: StepConfig, progress: Progress, *, output: Path | None = None,
                workdir: Path | None = None, note_machine: bool = False, **recipe_options: Any) -> FileRun:
    """Run step ``kind`` on the model in ``path``; ``output``: where the resulting model goes;
    ``note_machine``: first say on stderr when this machine is not the one the file was made for."""
    from distillcli.engine.pipeline import Pipeline
    from distillcli.machine import file_note, this_machine

    if note_machine and (note := file_note(read_header(path), path.name, this_machine())):
        sys.stderr.write(note + "\n")
    recipe = file_recipe(path, kind, options, **recipe_options)
    result = Pipeline(recipe, progress, persist=False, workdir=workdir, final_model=output).run()
    assert result.student is not None  # the recipe's student is the file's model
    return FileRun(result.record, result.final_model, result.student)
