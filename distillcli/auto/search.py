"""The search: an Optuna study whose trials are generated recipes run by the engine.

Everything lives in the output directory, so a killed search continues where it stopped:

    auto.yaml          the resolved auto recipe (a rerun with another one is refused)
    study.journal      Optuna's journal storage: every trial, its parameters, reports and state
    reference/         the starting model measured on the validation split (and its sensitivity)
    trials/NNN/        one run directory per candidate (recipe.yaml, metrics.json, models/, checkpoints/;
                       candidate.yaml, the whole recipe, where the run started from another trial's model)

A trial killed mid-way is marked failed and queued again with the same parameters; the new
trial resumes the killed one's run directory from its last checkpoint (the engine's resume).
Finished and pruned trials are never repeated. TPE (with the accuracy constraint) samples,
successive halving on the fine-tune epochs prunes.
"""

from __future__ import annotations

import copy
import math
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from distillcli.atomic_write import write_text
from distillcli.auto.config import AutoConfig
from distillcli.auto.retime import RETIME_TOP, fastest, retime
from distillcli.auto.score import Reference, cost_ratio, last_cost, ratio_text, score, seen_warning
from distillcli.auto.space import describe, guided_overrides, seed_candidates, suggest, trial_steps
from distillcli.auto.study import (Candidate, candidate, enqueue, finished, float_twins, open_study,
                                   precision_factor, queue_milder, same_as, trial_path, trials_done, twins)
from distillcli.auto.trial import TrialObserver, run_trial
from distillcli.engine.rundir import recipe_differences
from distillcli.errors import DistillError, Interrupted, RunDirError, RunFailure, TargetUnreachable
from distillcli.facts import LayerSensitivity, SensitivityFacts, is_int8
from distillcli.progress import Progress
from distillcli.record import RunRecord


CANDIDATE_RECIPE = "candidate.yaml"  # a trial's whole recipe, where its run started from another trial's model


class TrialFailed(Exception):
    """A candidate that cannot be built (e.g. a layer int8 cannot take): the search goes on."""


@dataclass
class SearchResult:
    out: Path
    cfg: AutoConfig
    base: dict[str, Any]
    reference: Reference
    candidates: list[Candidate] = field(default_factory=list)
    chosen: Candidate | None = None
    seconds: float = 0.0

    def path(self, stored: str) -> Path:
        return trial_path(self.out, stored)


def _gpu_precisions(cfg: AutoConfig, device: str, progress: Progress) -> AutoConfig:
    """A latency search on a GPU leaves int8 out: its programs run on the CPU, and their CPU times
    would be ranked against the GPU's (bf16 / fp16 programs move to the GPU)."""
    from distillcli.runtime import resolve_device

    int8 = [q for q in cfg.quantize if is_int8(q)]
    if cfg.objective != "latency" or not int8 or resolve_device(device).type == "cpu":
        return cfg
    kept = [q for q in cfg.quantize if not is_int8(q)] or ["none"]
    progress.message(f"note: on {device} the search leaves out int8 (auto.quantize: [{', '.join(kept)}]): "
                     f"quantize's {', '.join(int8)} programs run on the CPU")
    return cfg.model_copy(update={"quantize": kept})


class Search:
    def __init__(self, base: dict[str, Any], cfg: AutoConfig, out: Path, progress: Progress,
                 force: bool = False) -> None:
        from distillcli.data.config import DataConfig
        from distillcli.recipe import anchor_paths

        base = copy.deepcopy(base)
        anchor_paths(base, Path.cwd())  # trial recipes mean the same from any directory (and on a rerun)
        data = base.setdefault("data", {})
        data.setdefault("name", DataConfig().name)  # a recipe without data: the default dataset, named
        data.setdefault("val_split", cfg.val_split)
        data.setdefault("val_from", cfg.val_from)
        cfg = _gpu_precisions(cfg, str(base.get("device", "auto")), progress)
        self.base, self.cfg, self.out, self.progress = base, cfg, out, progress
        self.resolved = {**base, "auto": cfg.model_dump(mode="json")}
        self.seconds_limit, self.trials_limit = cfg.limits()
        self.deadline: float | None = None
        self.sensitivity: list[LayerSensitivity] = []
        self._check_out(force)

    # ---------------------------------------------------------------- the output directory
    def _check_out(self, force: bool) -> None:
        out = self.out
        if out.exists() and not out.is_dir():
            raise RunDirError(f"--out {out} is a file, not a directory", "choose another --out")
        if force and (out / "auto.yaml").is_file():
            shutil.rmtree(out)
        if (out / "auto.yaml").is_file():
            # a rerun may give the search another budget; anything else would mix two searches
            diff = [d for d in recipe_differences(out, self.resolved, "auto.yaml") if not d.startswith("auto.budget")]
            if diff:
                raise RunDirError(f"{out} holds a search of another recipe: " + "; ".join(diff[:3]),
                                  "rerun with the same options to continue it, add --force to start anew, or "
                                  "choose another --out")
        elif out.is_dir() and any(out.iterdir()):
            raise RunDirError(f"{out} is not empty and holds no search", "choose an empty or new --out")

    # ---------------------------------------------------------------- the study
    def run(self) -> SearchResult:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.ERROR)
        t0 = time.perf_counter()
        self.out.mkdir(parents=True, exist_ok=True)
        write_text(self.out / "auto.yaml", yaml.safe_dump(self.resolved, sort_keys=False))
        study = open_study(self.out, int(self.base.get("seed", 0)), self.cfg.reduction_factor)
        spent = float(study.user_attrs.get("seconds", 0.0))
        if spent:
            self.progress.message(f"continuing the search in {self.out} ({trials_done(study)} trials done, "
                                  f"{_minutes(spent)} spent)")
        self.reference = self._reference()
        enqueue(study, seed_candidates(self.cfg), self.progress)
        left_s = None if self.seconds_limit is None else self.seconds_limit - spent - (time.perf_counter() - t0)
        left_n = None if self.trials_limit is None else self.trials_limit - trials_done(study)
        self.deadline = None if left_s is None else time.time() + left_s
        self._started, self._spent = t0, spent
        if (left_s is None or left_s > 0) and (left_n is None or left_n > 0):
            study.optimize(self._objective, n_trials=left_n, timeout=left_s, catch=(TrialFailed,),
                           callbacks=[self._after_trial], gc_after_trial=True)
        else:
            self.progress.message("the budget is spent: no new trials (give a larger --time-budget or --trials to search on)")
        study.set_user_attr("seconds", spent + time.perf_counter() - t0)
        candidates = finished(study)
        best = fastest(candidates)
        if self.cfg.objective == "latency" and len(best) > 1:
            best = self._retime(best[:RETIME_TOP])
        chosen = best[0] if best else None
        return SearchResult(self.out, self.cfg, self.base, self.reference, candidates, chosen,
                            float(study.user_attrs["seconds"]))

    def _reference(self) -> Reference:
        """The starting model on the validation split (and, for channel pruning, its sensitivity)."""
        from distillcli.auto.score import step_cost
        from distillcli.engine.pipeline import Pipeline
        from distillcli.progress import SilentProgress
        from distillcli.recipe import validate_raw
        from distillcli.record import StepRecord
        from distillcli.report import load_record

        folder = self.out / "reference"
        guided = self.cfg.sensitivity and self.cfg.objective != "size"
        record: RunRecord | None = None
        if (folder / "metrics.json").is_file():
            record = load_record(folder)
            record = record if record.run.status == "ok" else None
        if record is None:
            self.progress.message("measuring the starting model on the validation split"
                                  + (" and its layers' pruning sensitivity" if guided else ""))
            steps = [{"sensitivity": {"ratios": self.cfg.sensitivity_ratios}} if guided else {"evaluate": {"model": "teacher"}}]
            recipe = {**self.base, "name": f"{self.base.get('name', 'auto')}-reference", "student": {"from": "teacher"},
                      "steps": steps, "report": self._report(), "checkpoint": {"every_epochs": None}}
            record = Pipeline(validate_raw(recipe, source="the search's reference run"), SilentProgress(), out=folder,
                              force=True, measure_on_val_split=True).run().record
        assert record.baseline is not None  # the teacher has a checkpoint: measured at the start
        m = record.baseline.measures
        cost = step_cost(StepRecord(index=0, kind="evaluate", target="teacher", measures=m), self.cfg.objective,
                         self.cfg.batch_size)
        if m.top1 is None or not cost:
            raise RunFailure("the starting model could not be measured on the validation split",
                             f"see {folder / 'run.log'}")
        facts = record.steps[0].info if guided and record.steps else None
        self.sensitivity = facts.rows if isinstance(facts, SensitivityFacts) else []
        ref = Reference(m.top1, cost)
        self.progress.message(f"starting model: top-1 {ref.top1:.2f} % on the validation split, "
                              f"{_cost_text(self.cfg, ref.cost)}")
        if (warning := seen_warning(ref)) is not None:
            self.progress.message(f"warning: {warning}")
        return ref

    def _retime(self, top: list[Candidate]) -> list[Candidate]:
        """``top`` timed again side by side with the starting model (see auto/retime.py), fastest first."""
        start = self.out / "reference" / "models" / "teacher.pt"
        if not start.is_file():  # a reference run that kept no model file
            return top
        ratios = retime(start, [trial_path(self.out, c.get("model_file")) for c in top], self.cfg.batch_size,
                        str(self.base.get("device", "auto")), self.cfg.latency_repeats,
                        bool(self.base.get("channels_last", True)))
        for c, ratio in zip(top, ratios):
            c.attrs["retimed_ratio"] = ratio
        self.progress.message("the fastest candidates timed again side by side: " + ", ".join(
            f"{c.label} {ratio_text('latency', r)}" for c, r in zip(top, ratios)))
        return sorted(top, key=lambda c: (c.get("retimed_ratio"), -c.get("top1")))

    def _report(self) -> dict[str, Any]:
        return {"latency": self.cfg.objective == "latency", "latency_batches": [self.cfg.batch_size],
                "latency_repeats": self.cfg.latency_repeats}

    # ---------------------------------------------------------------- one trial
    def trial_recipe(self, choice: dict[str, Any], run_name: str) -> dict[str, Any]:
        overrides = (guided_overrides(self.sensitivity, self.reference.top1, choice["layer_budget"])
                     if choice.get("guide") == "sensitivity" else {})
        return {**self.base, "name": f"{self.base.get('name', 'auto')}-{run_name}", "student": {"from": "teacher"},
                "steps": trial_steps(choice, self.cfg, overrides), "report": self._report()}

    def _objective(self, trial: Any) -> float:
        import optuna

        cfg, ref = self.cfg, self.reference
        choice = suggest(trial, cfg, guided=bool(self.sensitivity))
        resume_dir = trial.user_attrs.get("resume_dir")
        run_dir = trial_path(self.out, resume_dir) if resume_dir else self.out / "trials" / f"{trial.number:03d}"
        # a run that started from a twin's model is short: it starts again (and finds its twin again)
        resume = (bool(resume_dir) and (run_dir / "checkpoints" / "state.pt").is_file()
                  and not (run_dir / CANDIDATE_RECIPE).is_file())
        trial.set_user_attr("run_dir", os.path.relpath(run_dir, self.out))
        trial.set_user_attr("choice", choice)
        again = trial.user_attrs.get("milder_of")
        self.progress.message(f"trial {trial.number}: {describe(choice)}" + (" (resumed)" if resume else "")
                              + (f" (#{again} pruned less)" if again is not None else ""))
        factor = precision_factor(trial.study, choice["quantize"])
        trial.set_user_attr("rung_cost_factor", factor)
        observer = TrialObserver(trial, ref, cfg.objective, cfg.batch_size, cfg.max_drop, self.deadline,
                                 twins(trial.study), {k: choice.get(k) for k in ("epochs", "quantize")},
                                 float_twins(trial.study, self.out), factor)
        try:
            record = self._run(trial, choice, run_dir, observer, resume)
        except Interrupted:
            if observer.stopped is None:  # Ctrl-C: resumable on the next run
                trial.set_user_attr("resumable", True)
                raise
            if observer.stopped == "duplicate":
                shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
                return same_as(trial, observer.twin)
            trial.set_user_attr("stopped", observer.stopped)
            trial.set_constraint("drop", float(trial.user_attrs.get("drop", math.inf)) - cfg.max_drop)
            shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
            raise optuna.TrialPruned(observer.stopped) from None
        except DistillError as e:
            trial.set_user_attr("error", e.message)
            raise TrialFailed(e.message) from None
        shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)  # finished: nothing to resume
        final = record.final_step()
        cost = last_cost(record.steps, cfg.objective, cfg.batch_size)
        if final is None or final.measures.top1 is None or not cost:
            trial.set_user_attr("error", "the candidate could not be measured")
            raise TrialFailed(f"trial {trial.number}: the candidate could not be measured")
        top1 = final.measures.top1
        trial.set_user_attr("top1", top1)
        trial.set_user_attr("drop", ref.top1 - top1)
        ratio = cost_ratio(cost, ref, cfg.objective, cfg.batch_size, record.baseline.measures if record.baseline else None)
        trial.set_user_attr("cost", cost)
        trial.set_user_attr("cost_ratio", ratio)
        trial.set_user_attr("feasible", ref.top1 - top1 <= cfg.max_drop)
        trial.set_constraint("drop", ref.top1 - top1 - cfg.max_drop)  # <= 0: within the allowed drop
        trial.set_user_attr("epochs", sum(len(s.curve) for s in record.steps)
                            + (observer.float_twin.epochs if observer.float_twin else 0))
        trial.set_user_attr("model_file", os.path.relpath(run_dir / final.model_file, self.out)
                            if final.model_file else None)
        tuned = next((s for s in reversed(record.steps) if s.kind == "distill" and s.model_file), None)
        if tuned is not None:  # the fine-tuned float model, for a candidate that differs only in precision
            trial.set_user_attr("float_model", os.path.relpath(run_dir / tuned.model_file, self.out))
        return score(top1, ratio, ref, cfg.max_drop)

    def _run(self, trial: Any, choice: dict[str, Any], run_dir: Path, observer: TrialObserver,
             resume: bool) -> RunRecord:
        """The trial's run. A MAC target past what pruning can give (the sensitivity guide keeps
        layers whole; max_layer_ratio caps the rest) is lowered to the most it gives: the prune step
        finds that out before any training, and the trial runs again at that target. A candidate
        whose fine-tuned model an earlier trial built runs its precision step on that model."""
        try:
            try:
                return run_trial(self.trial_recipe(choice, run_dir.name), run_dir, observer, resume)
            except TargetUnreachable as e:
                trial.set_user_attr("clamped_from", choice["mac_reduction"])
                choice["mac_reduction"] = math.floor(e.reachable * 1000) / 1000  # the step rounds to 3 decimals
                trial.set_user_attr("choice", choice)
                self.progress.message(f"  pruning gives at most {e.reachable:.2f}x fewer MACs here: clamped to that")
                return run_trial(self.trial_recipe(choice, run_dir.name), run_dir, observer, False)
        except Interrupted:
            if observer.stopped != "reuse":
                raise
        return self._precision_on_twin(trial, choice, run_dir, observer)

    def _precision_on_twin(self, trial: Any, choice: dict[str, Any], run_dir: Path,
                           observer: TrialObserver) -> RunRecord:
        """The candidate's precision step, started from its float twin's fine-tuned model. Its
        whole recipe (prune + KD + precision) is kept beside the run as candidate.yaml: what best.yaml
        holds when this candidate is chosen."""
        from distillcli.recipe import recipe_to_dict, validate_raw

        twin = observer.float_twin
        assert twin is not None
        whole = self.trial_recipe(choice, run_dir.name)
        recipe = {**whole, "student": {"checkpoint": str(twin.model_file.resolve())},
                  "steps": [s for s in whole["steps"] if "quantize" in s]}
        trial.set_user_attr("from_trial", twin.number)
        self.progress.message(f"  trial {twin.number} built the same fine-tuned model: its precision step starts "
                              "from that model")
        observer.stopped = None
        record = run_trial(recipe, run_dir, observer, False)
        write_text(run_dir / CANDIDATE_RECIPE,
                   yaml.safe_dump(recipe_to_dict(validate_raw(whole, source=f"trial {run_dir.name}")), sort_keys=False))
        return record

    def _after_trial(self, study: Any, trial: Any) -> None:
        """Progress: what the trial gave, trials done, the best so far, the budget left."""
        spent = self._spent + time.perf_counter() - self._started
        study.set_user_attr("seconds", spent)
        c = candidate(trial)
        if c.state == "complete":
            what = (f"top-1 {c.get('top1'):.2f} % ({-c.get('drop'):+.2f} pt), "
                    f"{ratio_text(self.cfg.objective, c.get('cost_ratio'))}" + ("" if c.get("feasible") else
                                                                               ", over the allowed drop"))
        elif c.state == "pruned":
            what = "stopped: " + ("the budget is spent" if c.get("stopped") == "budget" else
                                  f"pruned by successive halving after epoch {c.get('epochs')}")
        else:
            what = f"failed: {c.get('error')}"
        if c.twin is not None:
            what = f"is the same pruned model as trial {c.twin}: {what}"
        elif c.get("from_trial") is not None:
            what = f"(its precision step on trial {c.get('from_trial')}'s fine-tuned model): {what}"
        done = finished(study)
        states = {s: sum(x.state == s for x in done) for s in ("complete", "pruned", "failed")}
        best = next(iter(fastest(done)), None)
        best_text = (f"best so far #{best.number}: {ratio_text(self.cfg.objective, best.get('cost_ratio'))}, "
                     f"{-best.get('drop'):+.2f} pt" if best else "no candidate within the drop yet")
        if self.seconds_limit is not None:
            left = f"{_minutes(max(0.0, self.seconds_limit - spent))} left"
        else:
            left = f"{max(0, (self.trials_limit or 0) - trials_done(study))} trials left"
        self.progress.message(f"trial {trial.number} {what}\n  {trials_done(study)} done ({states['complete']} complete, "
                              f"{states['pruned']} pruned, {states['failed']} failed) | {best_text} | {left}")
        queue_milder(study, c, self.cfg.max_drop, self.progress)


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"


def _cost_text(cfg: AutoConfig, cost: float) -> str:
    from distillcli.report.markdown import human_bytes, human_count

    if cfg.objective == "latency":
        return f"{cost:.2f} ms at batch {cfg.batch_size}"
    return f"{human_bytes(int(cost))} stored" if cfg.objective == "size" else f"{human_count(int(cost))} MACs"
