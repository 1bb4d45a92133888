"""The engine: runs a recipe (data -> models -> steps in order), measuring after each step.

It is the only engine: `distill run` runs a recipe, and the commands on a model file
(`distill eval|prune|quantize|export|sensitivity`) run a one-step recipe made from the file.
It owns the run directory (see rundir.py), the run record, and checkpoints: at every step
boundary and, through ``ctx.fit``, inside training loops. Nothing is created before the data
and models load, so a run that cannot start leaves nothing behind.
"""

from __future__ import annotations

import copy
import datetime as _dt
import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml

from distillcli.atomic_write import remove_stale_temps, write_text
from distillcli.data import load_data
from distillcli.errors import DataError, DistillError, Interrupted, OptionError, RunDirError, RunFailure
from distillcli.measure import count_params, interleaved_latency, measure_model
from distillcli.machine import this_machine
from distillcli.modelfile import file_header, file_size, model_suffix, save_model, versions
from distillcli.models.build import place
from distillcli.models.handle import ModelHandle
from distillcli.interrupt import InterruptHandler
from distillcli.progress import LoggedProgress, Progress, SilentProgress
from distillcli.recipe import RecipeBase, recipe_to_dict
from distillcli.recipe_models import build_from_spec, build_teacher, pretrained_input_of, source_file, student_from_teacher
from distillcli.models.ensemble import ENSEMBLE
from distillcli.record import DataInfo, Measures, RunInfo, RunRecord, StepRecord, TeacherRecord, best_epoch
from distillcli.report import write_reports
from distillcli.report.tracking import Tracker, open_tracker, summary_writer_class
from distillcli.rundir import check_out_dir, clear_run, default_run_dir, publish_final_models
from distillcli.run_state import RunState
from distillcli.runtime import (Distributed, busy_cores_warning, machine_load, resolve_device, resolve_precision,
                                seed_everything)
from distillcli.steps import STEPS, StepContext
from distillcli.training.checkpoint import Checkpointer
from distillcli.teacher_cache.key import default_cache_dir
from distillcli.models.sources import trusting_code
from distillcli.training.collapse import collapse_warning
from distillcli.training.fit import FitSession
from distillcli.training.optim import training_options


@dataclass
class RunResult:
    run_dir: Path | None
    record: RunRecord
    final_model: Path | None = None
    student: ModelHandle | None = None


def recipe_hash(recipe: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]


class Pipeline:
    """``out``: the run directory (default runs/<name>-<time>). ``persist=False`` (file commands)
    keeps no run directory: only ``final_model`` is written, and step files go to ``workdir``.
    ``measure_on_val_split``: every measure (the engine's and the steps') is taken on the share
    held out of the training data by ``data.val_split``, never on the test split (recorded as
    ``data.measured_on``): how a search compares candidates. ``observer`` sees every epoch and
    step (in place of the TensorBoard tracker)."""

    def __init__(self, recipe: RecipeBase, progress: Progress, out: str | Path | None = None,
                 recipe_file: str | None = None, *, resume: bool = False, force: bool = False,
                 persist: bool = True, workdir: Path | None = None, final_model: Path | None = None,
                 measure_on_val_split: bool = False, observer: Tracker | None = None,
                 time_against_start: bool = False) -> None:
        self.recipe_dict = recipe_to_dict(recipe)
        # the resolved recipe (absolute paths), exactly as recipe.yaml holds it and a resume reads it
        self.recipe = type(recipe).model_validate(self.recipe_dict)
        self.trust_code = recipe.trust_code  # consent holds for this run only: it is not in the saved recipe
        self.dist = Distributed.from_env()
        if out is None and self.dist.enabled:  # every process must pick the same directory: torchrun's run id
            out = Path("runs") / f"{recipe.name}-{os.environ.get('TORCHELASTIC_RUN_ID', 'torchrun')}"
        self.run_dir = (Path(out) if out is not None else default_run_dir(recipe.name)) if persist else None
        self.resume, self.force = resume, force
        self.recipe_file = recipe_file
        self.workdir, self.final_model = workdir, final_model
        self.measure_on_val_split, self.observer = measure_on_val_split, observer
        # re-time every changed model in alternation with the baseline model, so that their ratio holds
        # while the machine's load drifts (file commands always do; distill auto's trials ask for it)
        self.time_against_start = time_against_start or self.run_dir is None
        log = self.run_dir / "run.log" if self.run_dir is not None and self.dist.is_main else None
        self.progress = LoggedProgress(progress if self.dist.is_main else SilentProgress(), log)
        self.interrupt = InterruptHandler()
        self._before: torch.nn.Module | None = None  # file commands: the starting model, for interleaved latency

    # ------------------------------------------------------------------ run
    def run(self) -> RunResult:
        from distillcli.modelfile.program import set_compile_notice

        if self.run_dir is not None and self.dist.is_main:
            check_out_dir(self.run_dir, self.recipe_dict, self.force, self.resume)
        set_compile_notice(self.progress.message)
        with self.interrupt, trusting_code(self.trust_code):
            try:
                return self._run()
            finally:
                set_compile_notice(None)
                self.dist.stop()

    def _run(self) -> RunResult:
        r = self.recipe
        t0 = time.perf_counter()
        if r.threads:
            torch.set_num_threads(r.threads)
        seed_everything(r.seed)
        device = resolve_device(r.device, self.dist)
        self._check_precisions(device)
        if r.report.tensorboard and self.run_dir is not None:
            summary_writer_class()  # a missing tensorboard fails the run (every process) before anything is written
        self.dist.start(device)
        self.device = device
        self.data = load_data(r.data, device=device, seed=r.seed, channels_last=r.channels_last,
                              pretrained=pretrained_input_of(r))
        if self.measure_on_val_split:
            selection = self.data.selection_only()
            if selection is None:
                raise DataError("measuring on the validation split needs data.val_split", "set data.val_split, "
                                "e.g. 0.1")
            self.data = selection
        self.state = RunState(self.data, student_rebuilt=r.student.from_ != "teacher")
        self.models, self.files = self.state.models, self.state.files
        if self.dist.enabled:
            self.data.shard(self.dist.rank, self.dist.world)
        self.models["teacher"] = build_teacher(r, self.data)
        if r.teacher is not None:
            self.files["teacher"] = source_file(r.teacher.checkpoint)
        if r.student.from_ != "teacher":  # built now, so its random start depends on the seed alone
            self._current("student")
            sizes = [count_params(m.module) for m in (self.models["teacher"], self.models["student"])
                     if m is not None and m.format == "eager"]
            if len(sizes) == 2 and sizes[1] > sizes[0]:
                self.progress.message(f"warning: the student ({sizes[1]:,} parameters) is larger than its teacher "
                                      f"({sizes[0]:,}); check that teacher and student are not swapped")
        self.record = self._new_record(device)
        warning = busy_cores_warning(self.record.run.load_average, torch.get_num_threads())
        if warning:
            self.progress.message(warning)
        self.checkpointer = Checkpointer(None)
        saved = self._open_run_dir()
        self.tracker = self.observer or open_tracker(r.report.tensorboard and self.dist.is_main, self.run_dir)
        self.fits = FitSession(self.data, self.progress, self.dist, self.checkpointer, self.state.write,
                               lambda: self.interrupt.requested, self.tracker.epoch)
        first = 0
        if saved is not None:
            first = self._restore(saved)
        else:
            self._measure_start()
        run = self.record.run
        self._t_run = t0 - run.seconds  # a resumed run's time adds up over its legs
        self._ckpt_base = (run.checkpoint_writes, run.checkpoint_seconds)
        try:
            for index, (kind, cfg) in enumerate(r.step_list()):
                if index < first:
                    continue
                if index > first or saved is None:
                    self._checkpoint_boundary(index)
                fits = saved["fits"] if saved is not None and index == first else ()
                self.fits.begin_step(fits)
                self.tracker.begin_step(f"step{index}-{kind}", sum(len(s.curve) for s in self.record.steps)
                                        + sum(len(f.get("curve", [])) for f in fits))
                self._run_step(index, kind, cfg)
            if first < len(r.step_list()) or saved is None:
                self._checkpoint_boundary(len(r.step_list()))  # done: resuming only rewrites the reports
            run.status = "ok"
        except Interrupted as e:
            run.status, run.error = "interrupted", e.message
            raise Interrupted(e.message, self._resume_hint()) from None
        except KeyboardInterrupt:
            run.status, run.error = "interrupted", "interrupted"
            raise Interrupted("interrupted", self._resume_hint()) from None
        except DistillError as e:
            run.status, run.error = "failed", e.message
            raise
        except Exception as e:  # a bug or a runtime failure: keep what was measured, then report it
            run.status, run.error = "failed", f"{type(e).__name__}: {e}"
            where = f"see {self.run_dir / 'run.log'}; " if self.run_dir else ""
            raise RunFailure(f"the run failed: {type(e).__name__}: {e}",
                             where + "rerun with DISTILL_DEBUG=1 for the traceback") from e
        finally:
            run.finished = _dt.datetime.now().isoformat(timespec="seconds")
            self._update_timings()
            self._write_reports(final=True)
            self.tracker.close()
        self._finish()
        return RunResult(self.run_dir, self.record, self.final_model, self.models["student"])

    def _check_precisions(self, device: torch.device) -> None:
        """A precision the device cannot run fails now, not after the steps before it have run."""
        for index, (kind, cfg) in enumerate(self.recipe.step_list()):
            for options in training_options(cfg):
                try:
                    resolve_precision(options.precision, device)
                except OptionError as e:
                    raise OptionError(f"steps[{index}].{kind}: {e.message}", e.hint) from None

    def _resume_hint(self) -> str:
        if self.run_dir is None or not self.checkpointer.enabled:
            return "nothing was kept: this command keeps no checkpoints; run it again"
        return f"the last checkpoint is kept; continue with: distill resume {self.run_dir}"

    def _new_record(self, device: torch.device) -> RunRecord:
        r, d = self.recipe, self.data
        info = RunInfo(name=r.name, dir=str(self.run_dir) if self.run_dir else None, device=str(device),
                       seed=r.seed, threads=torch.get_num_threads(), world_size=self.dist.world,
                       cpu_count=os.cpu_count(), load_average=machine_load(), machine=this_machine(),
                       versions=versions(), recipe_file=self.recipe_file, recipe_hash=recipe_hash(self.recipe_dict),
                       started=_dt.datetime.now().isoformat(timespec="seconds"))
        data = DataInfo(name=d.name, num_classes=d.num_classes, class_names=d.class_names,
                        input_shape=list(d.input_shape), train_samples=d.train.num_samples,
                        test_samples=0 if self.measure_on_val_split else d.val.num_samples,
                        val_samples=d.select.num_samples if d.select is not None else 0,
                        measured_on="val" if self.measure_on_val_split else "test")
        return RunRecord(run=info, data=data)

    # ------------------------------------------------------------------ run directory and checkpoints
    def _open_run_dir(self) -> dict[str, Any] | None:
        """Create (or reopen) the run directory; returns the checkpoint to resume from."""
        if self.run_dir is None:
            return None
        path = self.run_dir
        folder = path / "checkpoints" if self.dist.is_main else None
        ckpt = self.recipe.checkpoint
        self.checkpointer = self.state.checkpointer = Checkpointer(folder, ckpt.every_epochs, ckpt.every_minutes)
        if self.resume:
            saved = Checkpointer(path / "checkpoints").read()
            if saved is None:
                self.progress.message(f"{path} has no checkpoint yet: starting the run from its beginning")
            return saved
        if self.dist.is_main:
            if self.force and path.exists():
                clear_run(path)
            (path / "models").mkdir(parents=True, exist_ok=True)
            write_text(path / "recipe.yaml", yaml.safe_dump(self.recipe_dict, sort_keys=False))
        self.dist.barrier()
        r = self.recipe
        self.progress.message(f"run {r.name} -> {path}  (device {self.device}, seed {r.seed}, "
                              f"{torch.get_num_threads()} threads" +
                              (f", {self.dist.world} processes)" if self.dist.enabled else ")"))
        return None

    def _restore(self, saved: dict[str, Any]) -> int:
        """Continue from a checkpoint: the record, the models and random state at the start of
        the step that was running; that step re-runs and replays its finished loops."""
        assert self.run_dir is not None  # resume needs a run directory
        if saved.get("recipe") != self.recipe_dict:
            raise RunDirError(f"the checkpoint in {self.run_dir} was written by another recipe than its recipe.yaml "
                              "(edited since?)", "restore recipe.yaml, or start the run again with --force")
        remove_stale_temps(self.run_dir)
        self.record = RunRecord.model_validate(saved["record"])
        self.record.run.resumed.append(_dt.datetime.now().isoformat(timespec="seconds"))
        run, now = self.record.run, self._new_record(self.device).run  # where this leg runs
        run.status, run.error = "running", None
        run.device, run.threads, run.world_size, run.versions = now.device, now.threads, now.world_size, now.versions
        run.machine = now.machine
        self.state.restore(saved, self.run_dir / "checkpoints")
        self.state.update_record(self.record.to_json())  # later checkpoints of this step count this resume
        step = int(saved["step"])
        done = sum(len(s.get("curve", [])) for s in saved["fits"])
        self.progress.message(f"resuming {self.run_dir} at step {step}" + (f" ({done} epochs of it done)" if done else ""))
        return step

    def _checkpoint_boundary(self, step: int) -> None:
        """The state at the start of ``step``: models changed so far, record, random state."""
        if not self.checkpointer.enabled:
            return
        self._update_timings()
        self.state.boundary(step, self.record.to_json(), self.recipe_dict,
                            lambda m, path: self._save(m, path, Measures()) and None)

    def _update_timings(self) -> None:
        run = self.record.run
        run.seconds = time.perf_counter() - self._t_run
        run.checkpoint_writes = self._ckpt_base[0] + self.checkpointer.writes
        run.checkpoint_seconds = self._ckpt_base[1] + self.checkpointer.write_seconds

    # ------------------------------------------------------------------ steps
    def _current(self, target: str) -> ModelHandle:
        model = self.models[target]
        if model is not None:
            return model
        spec = self.recipe.student  # only the student is built lazily (validation requires a teacher section)
        teacher = self.models["teacher"]
        if spec.from_ == "teacher" and teacher is not None:
            model = student_from_teacher(spec, teacher, self.data)
        else:
            model = build_from_spec(spec, self.data)
            self.files["student"] = source_file(spec.checkpoint)
        self.models["student"] = model
        return model

    def _context(self) -> StepContext:
        workdir = self.run_dir if self.run_dir is not None else self.workdir
        exports = self.run_dir / "exports" if self.run_dir is not None else self.workdir
        cache = self.recipe.cache_dir
        return StepContext(device=self.device, data=self.data, seed=self.recipe.seed, teacher=self.models["teacher"],
                           progress=self.progress, channels_last=self.recipe.channels_last, workdir=workdir,
                           exports_dir=exports, dist=self.dist, fits=self.fits,
                           cache_dir=Path(cache).expanduser() if cache else default_cache_dir())

    def _measure_start(self) -> None:
        """Measure the models a run starts from when they were loaded (the report's baseline)."""
        r = self.recipe
        steps = r.step_list()
        if r.teacher is not None and r.teacher.checkpoint:
            teacher = self._placed("teacher")
            measures = self._measure(teacher, "teacher")
            self.record.offer_baseline("teacher", "the teacher", measures)
            self._keep_for_timing(teacher, measures)
        if r.teachers:
            self._measure_teachers()
        if r.student.checkpoint and steps and steps[0][0] != "evaluate":
            self._current("student")
            model = self._placed("student")
            measures = self._measure(model, "student")
            self.record.offer_baseline("start", "the starting model", measures)
            self._keep_for_timing(model, measures)

    def _keep_for_timing(self, model: ModelHandle, measures: Measures) -> None:
        """Keep a copy of the baseline model for the before/after latency, if ``measures`` are the baseline's."""
        baseline = self.record.baseline
        if self.time_against_start and baseline is not None and baseline.measures is measures \
                and self.recipe.report.latency and model.format == "eager":
            self._before = copy.deepcopy(model.module)

    def _measure_teachers(self) -> None:
        """Several teachers: each measured alone (metrics.json ``teachers``), and their ensemble, the
        model the student learns from, as the baseline; its stored size is that of all their files."""
        ensemble = self._placed("teacher")
        arch = ensemble.arch.kwargs
        specs = self.recipe.teachers or []
        for i, (spec, member) in enumerate(zip(specs, ensemble.module.children())):
            measures = self._measure_module(member)
            source = source_file(spec.checkpoint)
            measures.file_bytes = file_size(source) if source is not None and source.is_file() else None
            self.record.teachers.append(TeacherRecord(index=i, arch=arch["members"][i], checkpoint=str(spec.checkpoint),
                                                      weight=arch["weights"][i], measures=measures))
        measures = self._measure(ensemble, "teacher")
        sizes = [t.measures.file_bytes for t in self.record.teachers]
        measures.file_bytes = None if None in sizes else sum(b or 0 for b in sizes)
        self.record.offer_baseline("teacher", f"the ensemble of {len(specs)} teachers", measures)

    def _run_step(self, index: int, kind: str, cfg: Any) -> None:
        target = cfg.model
        model = self._current(target)
        self.progress.message(f"step {index}: {kind} [{target}]")
        t0 = time.perf_counter()
        self.interrupt.in_loop = True
        ctx = self._context()
        try:
            out = STEPS.get(kind).run(model, ctx, cfg)
        finally:
            self.interrupt.in_loop = False
        seconds = time.perf_counter() - t0
        changed = out.model is not model
        if changed:
            self.state.changed(target, out.model)
        entry = StepRecord(index=index, kind=kind, target=target, options=cfg.model_dump(mode="json"),
                           seconds=seconds, curve=out.curve, best=best_epoch(out.curve), info=out.info,
                           teacher_cache=ctx.teacher_cache)
        t0 = time.perf_counter()
        entry.measures = self._measure(out.model, target)
        if changed and self._before is not None and self.record.baseline is not None:
            self._interleave_latency(self.record.baseline.measures, entry.measures, out.model)
        entry.measure_seconds = time.perf_counter() - t0
        if changed and self.run_dir is not None and self.recipe.report.save_models and self.dist.is_main:
            path = self._save(out.model, self.run_dir / "models" / f"{index:02d}-{kind}-{target}", entry.measures)
            self.files[target] = path
        if self.files[target] is not None and self.run_dir is not None and \
                self.files[target].is_relative_to(self.run_dir):  # type: ignore[union-attr]
            entry.model_file = str(self.files[target].relative_to(self.run_dir))  # type: ignore[union-attr]
        self.record.steps.append(entry)
        self.tracker.step(entry, self.record.steps)
        if target == "teacher":
            self.record.offer_baseline("teacher_step", f"the teacher after step {index}", entry.measures, index)
        elif index == 0:
            self.record.offer_baseline("first_step", f"step 0 ({kind})", entry.measures, 0)
        m = entry.measures
        self.progress.message(f"step {index}: {kind} [{target}] top-1 {m.top1 or 0:.2f} %  params {m.params}  "
                              f"MACs {m.macs}  ({seconds:.1f}s)")
        collapsed = collapse_warning(m.top1, self.data.num_classes, len(out.curve))
        if collapsed:
            entry.warnings.append(collapsed)
            self.progress.message(f"warning: step {index} ({kind}): {collapsed}")
        self._write_reports()

    def _placed(self, target: str) -> ModelHandle:
        """The model on the run's device and memory format, as steps will use it (so it is timed fairly)."""
        model = self.models[target]
        assert model is not None
        if model.format == "eager":
            model.module = place(model.module, self.device, self.recipe.channels_last)
        return model

    def _interleave_latency(self, before: Measures, after: Measures, model: ModelHandle) -> None:
        """A file command's before and after latencies, re-timed in alternation in this process."""
        rep = self.recipe.report
        timed = interleaved_latency(self._before, model.module, self.data.input_shape, rep.latency_batches, self.device,
                                    rep.latency_repeats, self.recipe.channels_last)
        for measures, stats in zip((before, after), timed):
            measures.latency_ms = {b: median for b, (median, _) in stats.items()}
            measures.latency_iqr_ms = {b: iqr for b, (_, iqr) in stats.items()}

    def _measure(self, model: ModelHandle | None, target: str) -> Measures:
        assert model is not None
        measures = self._measure_module(model.module)
        source = self.files[target]
        if source is not None and source.is_file():
            measures.file_bytes = file_size(source)
        return measures

    def _measure_module(self, module: torch.nn.Module) -> Measures:
        rep = self.recipe.report
        raw = measure_model(module, self.data.val, self.data.num_classes, self.data.input_shape, self.device,
                            latency_batches=rep.latency_batches if rep.latency else (),
                            repeats=rep.latency_repeats, channels_last=self.recipe.channels_last, dist=self.dist)
        return Measures(**raw)

    def _save(self, model: ModelHandle, stem: Path, measures: Measures) -> Path:
        d = self.data
        header = file_header(model, class_names=d.class_names, input_shape=d.input_shape, data=d.spec,
                             metrics=measures.summary(), recipe=self.recipe_dict)
        path = save_model(stem.with_suffix(model_suffix(model)), model, header)
        measures.file_bytes = file_size(path)
        return path

    def _finish(self) -> None:
        """models/student.pt and teacher.pt (the last file of each), and the requested model file."""
        if not self.dist.is_main:
            return
        if self.run_dir is not None:
            self._save_unchanged()
            publish_final_models(self.run_dir, self.files)
        if self.final_model is not None:
            step = self.record.final_step()
            model = self.models["student"]
            assert model is not None and step is not None
            self.final_model = self._save(model, self.final_model, step.measures)

    def _save_unchanged(self) -> None:
        """A final PyTorch model no step changed (a teacher loaded from a foreign checkpoint and only
        evaluated) gets its file in the run too, so that every final model of a run is there as a distill
        model file. Programs and ONNX files are files already; an ensemble of teachers is its members' files."""
        if not self.recipe.report.save_models:
            return
        for target, model in self.models.items():
            src, step = self.files.get(target), self.record.final_step(target)
            if model is None or model.format != "eager" or model.arch.name == ENSEMBLE or \
                    (src is not None and src.is_relative_to(self.run_dir / "models")):  # type: ignore[operator]
                continue
            measures = step.measures if step is not None else Measures()
            self.files[target] = self._save(model, self.run_dir / "models" / f"start-{target}", measures)  # type: ignore[operator]

    def _write_reports(self, final: bool = False) -> None:
        """metrics.json and report.md after every step; report.html (charts take a second) when the run ends."""
        if self.run_dir is None or not self.dist.is_main or not self.run_dir.is_dir():
            return
        write_reports(self.record, self.run_dir, [f for f in self.recipe.report.formats if final or f != "html"])
