"""Runs a recipe: data -> models -> steps in order, measuring and saving after each.

Owns the run directory: the resolved recipe, metrics.json (rewritten after every step, so
a crash keeps what was measured), report.md, run.log and models/.
"""

from __future__ import annotations

import datetime as _dt
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml

from distillcli.modelfile import file_header, model_suffix, save_model, versions
from distillcli.recipe_models import build_from_spec, student_from_teacher
from distillcli.runtime import resolve_device
from distillcli.data import load_data
from distillcli.errors import DistillError, RunFailure
from distillcli.atomic_write import atomic_path, write_json, write_text
from distillcli.modelfile import file_size
from distillcli.measure import measure_model
from distillcli.models.handle import ModelHandle
from distillcli.progress import Progress
from distillcli.recipe import RecipeBase, recipe_to_dict
from distillcli.report.markdown import render
from distillcli.report.metrics import best_epoch, new_metrics
from distillcli.runtime import seed_everything
from distillcli.steps import STEPS, StepContext


@dataclass
class RunResult:
    run_dir: Path
    metrics: dict[str, Any]


def new_run_dir(name: str, out: str | Path | None) -> Path:
    if out is not None:
        path = Path(out)
    else:
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        path = Path("runs") / f"{name}-{stamp}"
        n = 1
        while path.exists():
            n += 1
            path = Path("runs") / f"{name}-{stamp}-{n}"
    (path / "models").mkdir(parents=True, exist_ok=True)
    return path


class _LoggedProgress:
    """Forwards to the user's progress display and appends finished loops to run.log."""

    def __init__(self, inner: Progress, log: Path) -> None:
        self.inner, self.log = inner, log
        self.title = ""

    def _write(self, text: str) -> None:
        with self.log.open("a", encoding="utf-8") as f:
            f.write(f"{_dt.datetime.now().isoformat(timespec='seconds')} {text}\n")

    def start(self, title: str, total: int) -> None:
        self.title = title
        self.inner.start(title, total)

    def update(self, done: int, **stats: float) -> None:
        self.inner.update(done, **stats)

    def finish(self, **stats: float) -> None:
        self._write(self.title + "  " + "  ".join(f"{k} {v:.4g}" for k, v in stats.items()))
        self.inner.finish(**stats)

    def message(self, text: str) -> None:
        self._write(text)
        self.inner.message(text)


class Pipeline:
    def __init__(self, recipe: RecipeBase, progress: Progress, out: str | Path | None = None,
                 recipe_file: str | None = None) -> None:
        self.recipe = recipe
        self.recipe_dict = recipe_to_dict(recipe)
        self.run_dir = new_run_dir(recipe.name, out)
        self.progress = _LoggedProgress(progress, self.run_dir / "run.log")
        self.recipe_file = recipe_file
        self.teacher: ModelHandle | None = None
        self.student: ModelHandle | None = None

    # ------------------------------------------------------------------ run
    def run(self) -> RunResult:
        r = self.recipe
        write_text(self.run_dir / "recipe.yaml", yaml.safe_dump(self.recipe_dict, sort_keys=False))
        if r.threads:
            torch.set_num_threads(r.threads)
        seed_everything(r.seed)
        device = resolve_device(r.device)
        t_run = time.perf_counter()
        run_info = {"name": r.name, "dir": str(self.run_dir), "status": "running", "error": None,
                    "started": _dt.datetime.now().isoformat(timespec="seconds"), "finished": None, "seconds": 0.0,
                    "device": str(device), "seed": r.seed, "threads": torch.get_num_threads(),
                    "versions": versions(), "recipe_file": self.recipe_file}
        self.progress.message(f"run {r.name} -> {self.run_dir}  (device {device}, seed {r.seed}, "
                              f"{torch.get_num_threads()} threads)")
        self.data = load_data(r.data, device=device, seed=r.seed, channels_last=r.channels_last)
        d = self.data
        self.metrics = new_metrics(run_info, {
            "name": d.name, "num_classes": d.num_classes, "class_names": d.class_names,
            "input_shape": list(d.input_shape), "train_samples": d.train.num_samples, "val_samples": d.val.num_samples})
        self.device = device
        try:
            if r.teacher is not None:
                self.teacher = build_from_spec(r.teacher, d)
                if r.teacher.checkpoint:  # the baseline the report's deltas are measured against
                    self.metrics["teacher"] = self._measure(self.teacher)
            for index, (kind, cfg) in enumerate(r.step_list()):
                self._run_step(index, kind, cfg)
            run_info["status"] = "ok"
        except DistillError as e:
            run_info["status"], run_info["error"] = "failed", e.message
            raise
        except KeyboardInterrupt:
            run_info["status"], run_info["error"] = "failed", "interrupted"
            raise
        except Exception as e:  # a bug or a runtime failure: keep what was measured, then report it
            run_info["status"], run_info["error"] = "failed", f"{type(e).__name__}: {e}"
            raise RunFailure(f"the run failed: {type(e).__name__}: {e}",
                             f"see {self.run_dir / 'run.log'}; rerun with DISTILL_DEBUG=1 for the traceback") from e
        finally:
            run_info["finished"] = _dt.datetime.now().isoformat(timespec="seconds")
            run_info["seconds"] = time.perf_counter() - t_run
            self._write_reports()
        self._publish_final_models()
        return RunResult(self.run_dir, self.metrics)

    # ------------------------------------------------------------------ steps
    def _current(self, target: str) -> ModelHandle:
        if target == "teacher":
            assert self.teacher is not None  # recipe validation guarantees a teacher section
            return self.teacher
        if self.student is None:
            spec = self.recipe.student
            self.student = (student_from_teacher(spec, self.teacher, self.data) if spec.from_ == "teacher"
                            else build_from_spec(spec, self.data))
        return self.student

    def _context(self) -> StepContext:
        return StepContext(device=self.device, data=self.data, seed=self.recipe.seed, teacher=self.teacher,
                           progress=self.progress, channels_last=self.recipe.channels_last, workdir=self.run_dir)

    def _run_step(self, index: int, kind: str, cfg: Any) -> None:
        target = cfg.model
        model = self._current(target)
        self.progress.message(f"step {index}: {kind} [{target}]")
        t0 = time.perf_counter()
        out = STEPS.get(kind).run(model, self._context(), cfg)
        seconds = time.perf_counter() - t0
        if target == "teacher":
            self.teacher = out.model
        else:
            self.student = out.model
        entry: dict[str, Any] = {"index": index, "kind": kind, "target": target,
                                 "options": cfg.model_dump(mode="json"), "seconds": seconds, "model_file": None,
                                 "measures": {}, "curve": out.curve, "best": best_epoch(out.curve), "info": out.info}
        entry["measures"] = self._measure(out.model)
        if self.recipe.report.save_models:
            path = self._save(out.model, self.run_dir / "models" / f"{index:02d}-{kind}-{target}", entry["measures"])
            entry["model_file"] = str(path.relative_to(self.run_dir))
            entry["measures"]["file_bytes"] = file_size(path)
        self.metrics["steps"].append(entry)
        m = entry["measures"]
        self.progress.message(f"step {index}: {kind} [{target}] top-1 {m['top1']:.2f} %  params {m.get('params')}  "
                              f"MACs {m.get('macs')}  ({seconds:.1f}s)")
        self._write_reports()

    def _measure(self, model: ModelHandle) -> dict[str, Any]:
        rep = self.recipe.report
        module = model.module
        return measure_model(module, self.data.val, self.data.num_classes, self.data.input_shape, self.device,
                             latency_batches=rep.latency_batches if rep.latency else (),
                             repeats=rep.latency_repeats, channels_last=self.recipe.channels_last)

    def _save(self, model: ModelHandle, stem: Path, measures: dict[str, Any]) -> Path:
        d = self.data
        header = file_header(model, class_names=d.class_names, input_shape=d.input_shape, data=d.spec,
                             metrics={k: v for k, v in measures.items() if k != "per_class_top1"},
                             recipe=self.recipe_dict)
        return save_model(stem.with_suffix(model_suffix(model)), model, header)

    def _publish_final_models(self) -> None:
        """models/student.pt and models/teacher.pt: the last file written for each."""
        for target in ("student", "teacher"):
            files = [s["model_file"] for s in self.metrics["steps"] if s["target"] == target and s["model_file"]]
            if files:
                src = self.run_dir / files[-1]
                with atomic_path(self.run_dir / "models" / f"{target}{src.suffix}") as tmp:
                    shutil.copyfile(src, tmp)
                    if src.with_name(src.name + ".data").exists():  # external weights travel too
                        shutil.copyfile(src.with_name(src.name + ".data"), self.run_dir / "models" / f"{target}{src.suffix}.data")

    def _write_reports(self) -> None:
        formats = self.recipe.report.formats
        if "json" in formats:
            write_json(self.run_dir / "metrics.json", self.metrics)
        if "md" in formats:
            write_text(self.run_dir / "report.md", render(self.metrics))

