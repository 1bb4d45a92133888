"""What a run leaves besides its checkpoints: model files (each with its header), the final
models under models/ (and the file a file command asked for), and the reports."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from distillcli.data.bundle import DataBundle
from distillcli.engine.run_state import RunState
from distillcli.engine.rundir import publish_final_models
from distillcli.modelfile import file_header, file_size, model_suffix, save_model
from distillcli.models.ensemble import ENSEMBLE
from distillcli.models.handle import ModelHandle
from distillcli.recipe import RecipeBase
from distillcli.record import Measures, RunRecord
from distillcli.report import write_reports
from distillcli.runtime import Distributed


class RunOutputs:
    """``run_dir`` None (file commands): no reports, and no model file but the one asked for."""

    def __init__(self, recipe: RecipeBase, recipe_dict: dict[str, Any], data: DataBundle, run_dir: Path | None,
                 dist: Distributed) -> None:
        self.recipe, self.recipe_dict, self.data, self.run_dir, self.dist = recipe, recipe_dict, data, run_dir, dist

    def save(self, model: ModelHandle, stem: Path, measures: Measures) -> Path:
        """``model`` in ``stem`` + its format's suffix, its header holding ``measures`` (which learn the file's size)."""
        d = self.data
        header = file_header(model, class_names=d.class_names, input_shape=d.input_shape, data=d.spec,
                             metrics=measures.summary(), recipe=self.recipe_dict)
        path = save_model(stem.with_suffix(model_suffix(model)), model, header)
        measures.file_bytes = file_size(path)
        return path

    def finish(self, state: RunState, record: RunRecord, final_model: Path | None) -> Path | None:
        """models/student.pt and teacher.pt (the last file of each), and the requested model file
        (``final_model`` without its suffix): returns where that went."""
        if not self.dist.is_main:
            return final_model
        if self.run_dir is not None:
            self._save_unchanged(self.run_dir / "models", state, record)
            publish_final_models(self.run_dir, state.files)
        if final_model is None:
            return None
        step, model = record.final_step(), state.models["student"]
        assert model is not None and step is not None
        return self.save(model, final_model, step.measures)

    def _save_unchanged(self, models: Path, state: RunState, record: RunRecord) -> None:
        """A final PyTorch model no step changed (a teacher loaded from a foreign checkpoint and only
        evaluated) gets its file in the run too, so that every final model of a run is there as a distill
        model file. Programs and ONNX files are files already; an ensemble of teachers is its members' files."""
        if not self.recipe.report.save_models:
            return
        for target, model in state.models.items():
            src, step = state.files.get(target), record.final_step(target)
            if model is None or model.format != "eager" or model.arch.name == ENSEMBLE or \
                    (src is not None and src.is_relative_to(models)):
                continue
            measures = step.measures if step is not None else Measures()
            state.files[target] = self.save(model, models / f"start-{target}", measures)

    def write_reports(self, record: RunRecord, final: bool = False) -> None:
        """metrics.json and report.md after every step; report.html (charts take a second) when the run ends."""
        if self.run_dir is None or not self.dist.is_main or not self.run_dir.is_dir():
            return
        write_reports(record, self.run_dir, [f for f in self.recipe.report.formats if final or f != "html"])
