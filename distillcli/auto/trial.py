"""One candidate: its recipe run by the engine in its own run directory, measured on the
validation split, reporting each fine-tune epoch to Optuna so that successive halving can stop it."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from distillcli.auto.score import Reference, last_cost, score
from distillcli.errors import Interrupted
from distillcli.facts import PruneFacts
from distillcli.record import EpochRecord, RunRecord, StepRecord


def model_key(prune_info: PruneFacts, rest: Mapping[str, Any]) -> str:
    """What decides a pruned candidate's outcome: the channels each layer keeps (with the same
    importance scores, equal counts keep the same channels, whichever guide chose them) and the
    choices after pruning (fine-tune length, precision)."""
    kept = {name: counts[1] for name, counts in prune_info.channels.items()}
    return json.dumps({"kept": kept, **rest}, sort_keys=True)


@dataclass(frozen=True)
class FloatTwin:
    """A finished trial whose fine-tuned float model another candidate can start its precision step from."""

    number: int
    model_file: Path
    epochs: int


class TrialObserver:
    """The engine's tracker for a trial: after every fine-tune epoch, reports the score so far
    and stops the run (as an interruption the search recognises) when Optuna prunes it or the
    budget's deadline has passed. After the pruning step it stops a candidate whose pruned model
    an earlier trial already built (``twins``: model key -> trial number): rounding channel
    counts maps a range of MAC targets onto one model, and running it again would only spend time.
    A candidate whose fine-tuned float model an earlier trial built and only its precision differs
    (``float_twins``: float key -> that trial) stops too, to start its precision step from that
    model (``stopped == "reuse"``) instead of training the same epochs again.

    Until its precision step runs, a candidate's cost is its float model's times ``cost_factor``:
    what that precision did to the starting model's cost (its trial alone), so that successive
    halving does not rank an int8-bound candidate by its float speed."""

    def __init__(self, trial: Any, ref: Reference, objective: str, batch: int, max_drop: float,
                 deadline: float | None, twins: Mapping[str, int] | None = None,
                 rest: Mapping[str, Any] | None = None, float_twins: Mapping[str, FloatTwin] | None = None,
                 cost_factor: float = 1.0) -> None:
        self.trial, self.ref, self.objective, self.batch, self.max_drop = trial, ref, objective, batch, max_drop
        self.deadline, self.twins, self.rest = deadline, twins or {}, dict(rest or {})
        self.float_twins, self.cost_factor = float_twins or {}, cost_factor
        self.cost = ref.cost  # until a step measures one
        self.precise = False  # the precision step has run: its cost is measured, not estimated
        self.epochs_before, self.seen = 0, 0
        self.stopped: str | None = None  # "pruned" | "budget" | "duplicate" | "reuse"
        self.twin: int | None = None
        self.float_twin: FloatTwin | None = None

    def begin_step(self, prefix: str, epochs_before: int) -> None:
        self.epochs_before, self.seen = epochs_before, 0

    def epoch(self, row: EpochRecord) -> None:
        self.seen += 1
        if row.val_top1 is None:
            return
        epoch = self.epochs_before + self.seen
        factor = 1.0 if self.precise else self.cost_factor
        self.trial.report(score(row.val_top1, factor * self.cost / self.ref.cost, self.ref, self.max_drop), epoch)
        self.trial.set_user_attr("top1", row.val_top1)
        self.trial.set_user_attr("drop", self.ref.top1 - row.val_top1)
        self.trial.set_user_attr("epochs", epoch)
        if self.trial.should_prune():
            self.stopped = "pruned"
        elif self.deadline is not None and time.time() > self.deadline:
            self.stopped = "budget"
        if self.stopped:
            raise Interrupted(f"stopped after epoch {epoch}: " + ("successive halving pruned it" if
                                                                  self.stopped == "pruned" else "the budget is spent"))

    def step(self, entry: StepRecord, steps: Sequence[StepRecord]) -> None:
        self.cost = last_cost(list(steps), self.objective, self.batch) or self.cost
        self.precise = self.precise or entry.kind == "quantize"
        info = entry.info
        if not isinstance(info, PruneFacts) or info.method != "channel":
            return
        key, float_key = model_key(info, self.rest), model_key(info, {"epochs": self.rest.get("epochs")})
        self.trial.set_user_attr("model_key", key)
        self.trial.set_user_attr("float_key", float_key)
        if info.mac_reduction is not None:  # what the target became after rounding
            self.trial.set_user_attr("mac_reduction", info.mac_reduction)
        self.twin = self.twins.get(key)
        if self.twin is not None:
            self.stopped = "duplicate"
            raise Interrupted(f"the same pruned model as trial {self.twin}")
        self.float_twin = self.float_twins.get(float_key) if self.rest.get("quantize", "none") != "none" else None
        if self.float_twin is not None:
            self.stopped = "reuse"
            raise Interrupted(f"the same fine-tuned model as trial {self.float_twin.number}")

    def close(self) -> None:
        pass


def run_trial(recipe: dict[str, Any], run_dir: Path, observer: TrialObserver, resume: bool) -> RunRecord:
    """Run (or continue) the candidate's recipe; every measure on the validation split."""
    from distillcli.engine.pipeline import Pipeline
    from distillcli.progress import SilentProgress
    from distillcli.recipe import validate_raw

    pipeline = Pipeline(validate_raw(recipe, source=f"trial {run_dir.name}"), SilentProgress(), out=run_dir,
                        resume=resume, force=not resume, measure_on_val_split=True, observer=observer,
                        time_against_start=True)
    return pipeline.run().record
