"""Measuring a run's models: the baselines a run starts from, the model after each step, and a
changed model's latency re-timed beside the starting model's (see ``Measuring``)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Callable

import torch

from distillcli.data.bundle import DataBundle
from distillcli.engine.models import source_file
from distillcli.measure import interleaved_latency, measure_model
from distillcli.modelfile import file_size
from distillcli.models.build import place
from distillcli.models.handle import ModelHandle
from distillcli.recipe import RecipeBase
from distillcli.record import Baseline, Measures, RunRecord, TeacherRecord
from distillcli.runtime import Distributed


class Measuring:
    """Every measure of a run, taken on ``data.val`` as the recipe's ``report`` section asks; a
    model's stored size is that of its latest file in ``files`` (the run state's, kept current).
    ``against_start``: keep a copy of the baseline model and re-time every changed model in
    alternation with it, so that their ratio holds while the machine's load drifts."""

    def __init__(self, recipe: RecipeBase, data: DataBundle, device: torch.device, dist: Distributed,
                 files: dict[str, Path | None], against_start: bool) -> None:
        self.recipe, self.data, self.device, self.dist, self.files = recipe, data, device, dist, files
        self.against_start = against_start
        self._start: torch.nn.Module | None = None  # the baseline model, when it is timed against

    def baselines(self, record: RunRecord, teacher: ModelHandle | None, student: Callable[[], ModelHandle]) -> None:
        """Measure the models a run starts from when they were loaded (the report's baseline);
        ``student()`` builds the student if it is not built yet."""
        r = self.recipe
        steps = r.step_list()
        if r.teacher is not None and r.teacher.checkpoint:
            assert teacher is not None
            measures = self.model(teacher, "teacher")
            record.offer_baseline("teacher", "the teacher", measures)
            self._keep_for_timing(teacher, measures, record.baseline)
        if r.teachers:
            assert teacher is not None
            self._teachers(record, self._placed(teacher))
        if r.student.checkpoint and steps and steps[0][0] != "evaluate":
            model = student()
            measures = self.model(model, "student")
            record.offer_baseline("start", "the starting model", measures)
            self._keep_for_timing(model, measures, record.baseline)

    def after_step(self, model: ModelHandle, target: str, changed: bool, baseline: Baseline | None) -> Measures:
        """The model a step gave; a changed one re-timed beside the baseline model (whose latency is
        replaced by that of this timing) when the run times against its start."""
        measures = self.model(model, target)
        if changed and self._start is not None and baseline is not None:
            self._interleave_latency(baseline.measures, measures, model)
        return measures

    def model(self, model: ModelHandle, target: str) -> Measures:
        """Measure ``model`` on the run's device: a model loaded from a file and not yet run by any step
        (e.g. `distill eval FILE --device cuda`) is placed there first."""
        measures = self._module(self._placed(model).module)
        source = self.files[target]
        if source is not None and source.is_file():
            measures.file_bytes = file_size(source)
        return measures

    def _module(self, module: torch.nn.Module) -> Measures:
        rep = self.recipe.report
        raw = measure_model(module, self.data.val, self.data.num_classes, self.data.input_shape, self.device,
                            latency_batches=rep.latency_batches if rep.latency else (),
                            repeats=rep.latency_repeats, channels_last=self.recipe.channels_last, dist=self.dist)
        return Measures(**raw)

    def _teachers(self, record: RunRecord, ensemble: ModelHandle) -> None:
        """Several teachers: each measured alone (metrics.json ``teachers``), and their ensemble, the
        model the student learns from, as the baseline; its stored size is that of all their files."""
        arch = ensemble.arch.kwargs
        specs = self.recipe.teachers or []
        for i, (spec, member) in enumerate(zip(specs, ensemble.module.children())):
            measures = self._module(member)
            source = source_file(spec.checkpoint)
            measures.file_bytes = file_size(source) if source is not None and source.is_file() else None
            record.teachers.append(TeacherRecord(index=i, arch=arch["members"][i], checkpoint=str(spec.checkpoint),
                                                 weight=arch["weights"][i], measures=measures))
        measures = self.model(ensemble, "teacher")
        sizes = [t.measures.file_bytes for t in record.teachers]
        measures.file_bytes = None if None in sizes else sum(b or 0 for b in sizes)
        record.offer_baseline("teacher", f"the ensemble of {len(specs)} teachers", measures)

    def _placed(self, model: ModelHandle) -> ModelHandle:
        """The model on the run's device and memory format, as steps will use it (so it is timed fairly);
        a model file's runner that can move (an ONNX session) moves, the others compute where they do."""
        if model.format == "eager":
            model.module = place(model.module, self.device, self.recipe.channels_last)
        elif callable(place_on := getattr(model.module, "place_on", None)):
            place_on(self.device)
        return model

    def _keep_for_timing(self, model: ModelHandle, measures: Measures, baseline: Baseline | None) -> None:
        """Keep a copy of the baseline model for the before/after latency, if ``measures`` are the baseline's."""
        if self.against_start and baseline is not None and baseline.measures is measures \
                and self.recipe.report.latency and model.format == "eager":
            self._start = copy.deepcopy(model.module)

    def _interleave_latency(self, before: Measures, after: Measures, model: ModelHandle) -> None:
        """The baseline's and a changed model's latencies, re-timed in alternation in this process."""
        rep = self.recipe.report
        timed = interleaved_latency(self._start, model.module, self.data.input_shape, rep.latency_batches, self.device,
                                    rep.latency_repeats, self.recipe.channels_last)
        for measures, stats in zip((before, after), timed):
            measures.latency_ms = {b: median for b, (median, _) in stats.items()}
            measures.latency_iqr_ms = {b: iqr for b, (_, iqr) in stats.items()}
