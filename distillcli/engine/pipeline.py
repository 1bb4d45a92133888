"""The engine: runs a recipe (data -> models -> steps in order), measuring after each step.

It is the only engine: `distill run` runs a recipe, and the commands on a model file
(`distill eval|prune|quantize|export|sensitivity`) run a one-step recipe made from the file.
It owns the run directory (see rundir.py and start.py), the run record, and checkpoints: at every
step boundary and, through ``ctx.fit``, inside training loops. Nothing is created before the data
and models load, so a run that cannot start leaves nothing behind. What it measures: measuring.py;
what it writes besides checkpoints: outputs.py.
"""

from __future__ import annotations

import datetime as _dt
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from distillcli.engine.interrupt import InterruptHandler
from distillcli.engine.measuring import Measuring
from distillcli.engine.models import build_from_spec, build_teacher, recipe_data, source_file, student_from_teacher
from distillcli.engine.outputs import RunOutputs
from distillcli.engine.run_state import RunState
from distillcli.engine.rundir import check_out_dir, default_run_dir
from distillcli.engine.start import new_record, open_run_dir, restore
from distillcli.errors import DataError, DistillError, Interrupted, OptionError, RunFailure
from distillcli.measure import count_params
from distillcli.models.handle import ModelHandle
from distillcli.models.sources import trusting_code
from distillcli.progress import LoggedProgress, Progress, SilentProgress
from distillcli.recipe import RecipeBase, recipe_to_dict
from distillcli.record import Measures, RunRecord, StepRecord, best_epoch
from distillcli.report.tracking import Tracker, open_tracker, summary_writer_class
from distillcli.runtime import Distributed, busy_cores_warning, resolve_device, resolve_precision, seed_everything
from distillcli.steps import STEPS, StepContext
from distillcli.teacher_cache.key import default_cache_dir
from distillcli.training.collapse import collapse_warning
from distillcli.training.fit import FitSession
from distillcli.training.optim import training_options


@dataclass
class RunResult:
    run_dir: Path | None
    record: RunRecord
    final_model: Path | None = None
    student: ModelHandle | None = None


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
        self.data = recipe_data(r, device)
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
        self.measuring = Measuring(r, self.data, device, self.dist, self.files, self.time_against_start)
        self.outputs = RunOutputs(r, self.recipe_dict, self.data, self.run_dir, self.dist)
        self.record = new_record(r, self.recipe_dict, self.data, self.run_dir, device, self.dist, self.recipe_file,
                                 self.measure_on_val_split)
        warning = busy_cores_warning(self.record.run.load_average, torch.get_num_threads())
        if warning:
            self.progress.message(warning)
        saved = None
        if self.run_dir is not None:
            self.state.checkpointer, saved = open_run_dir(self.run_dir, r, self.recipe_dict, self.dist, self.progress,
                                                          device, resume=self.resume, force=self.force)
        self.checkpointer = self.state.checkpointer
        self.tracker = self.observer or open_tracker(r.report.tensorboard and self.dist.is_main, self.run_dir)
        self.fits = FitSession(self.data, self.progress, self.dist, self.checkpointer, self.state.write,
                               lambda: self.interrupt.requested, self.tracker.epoch)
        first = 0
        if saved is not None:
            assert self.run_dir is not None  # resume needs a run directory
            self.record, first = restore(saved, self.run_dir, self.recipe_dict, self.state, self.record.run,
                                         self.progress)
        else:
            self.measuring.baselines(self.record, self.models["teacher"], lambda: self._current("student"))
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
            self.outputs.write_reports(self.record, final=True)
            self.tracker.close()
        self.final_model = self.outputs.finish(self.state, self.record, self.final_model)
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

    # ------------------------------------------------------------------ run directory and checkpoints
    def _checkpoint_boundary(self, step: int) -> None:
        """The state at the start of ``step``: models changed so far, record, random state."""
        if not self.checkpointer.enabled:
            return
        self._update_timings()
        self.state.boundary(step, self.record.to_json(), self.recipe_dict,
                            lambda m, path: self.outputs.save(m, path, Measures()) and None)

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

    def _context(self, int8_later: bool = False) -> StepContext:
        workdir = self.run_dir if self.run_dir is not None else self.workdir
        exports = self.run_dir / "exports" if self.run_dir is not None else self.workdir
        cache = self.recipe.cache_dir
        return StepContext(device=self.device, data=self.data, seed=self.recipe.seed, teacher=self.models["teacher"],
                           progress=self.progress, channels_last=self.recipe.channels_last, workdir=workdir,
                           exports_dir=exports, dist=self.dist, fits=self.fits,
                           cache_dir=Path(cache).expanduser() if cache else default_cache_dir(),
                           int8_later=int8_later)

    def _run_step(self, index: int, kind: str, cfg: Any) -> None:
        target = cfg.model
        model = self._current(target)
        self.progress.message(f"step {index}: {kind} [{target}]")
        t0 = time.perf_counter()
        self.interrupt.in_loop = True
        later = self.recipe.step_list()[index + 1:]
        ctx = self._context(int8_later=any(c.int8_convs and c.model == target for _, c in later))
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
        entry.measures = self.measuring.after_step(out.model, target, changed, self.record.baseline)
        entry.measure_seconds = time.perf_counter() - t0
        if changed and self.run_dir is not None and self.recipe.report.save_models and self.dist.is_main:
            path = self.outputs.save(out.model, self.run_dir / "models" / f"{index:02d}-{kind}-{target}", entry.measures)
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
        self.outputs.write_reports(self.record)
