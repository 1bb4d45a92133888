"""The Optuna study as the search reads and writes it: its storage (study.journal), each finished
trial as a ``Candidate``, the trials that count against a budget, twins (trials that built the
same pruned model as an earlier one, and take its outcome), float twins (finished trials whose
fine-tuned model a candidate of another precision starts from) and what each precision did to
the starting model's cost."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from distillcli.auto.space import NO_PRUNING, describe, milder
from distillcli.auto.trial import FloatTwin
from distillcli.progress import Progress

STUDY = "auto"
OWN_ATTRS = {"choice", "run_dir", "resume_dir", "retry_of", "resumable", "milder_of"}  # a trial's own, never taken from a twin


@dataclass
class Candidate:
    number: int
    state: str  # complete | pruned | failed
    choice: dict[str, Any]
    attrs: dict[str, Any]

    @property
    def label(self) -> str:
        return f"#{self.number}"

    def get(self, key: str) -> Any:
        return self.attrs.get(key)

    @property
    def description(self) -> str:
        return describe(self.choice, self.get("mac_reduction"))

    @property
    def twin(self) -> int | None:
        """The earlier trial that built the same pruned model (this one took its outcome)."""
        return self.attrs.get("same_as")


def trial_path(out: Path, stored: str) -> Path:
    """A path a trial recorded: relative to the search's folder, so that the search continues from
    any working directory (searches before that recorded it relative to where they ran)."""
    path = out / stored
    return path if path.exists() or not Path(stored).exists() else Path(stored)


def open_study(out: Path, seed: int, reduction_factor: int) -> Any:
    """The search's study in ``out``, created on the first run and continued on the next ones."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    # the accuracy constraint reaches TPE through trial.set_constraint (see Search._objective)
    sampler = optuna.samplers.TPESampler(seed=seed)
    pruner = optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=reduction_factor)
    storage = JournalStorage(JournalFileBackend(str(out / "study.journal")))
    return optuna.create_study(study_name=STUDY, storage=storage, sampler=sampler, pruner=pruner,
                               direction="minimize", load_if_exists=True)


def enqueue(study: Any, seeds: list[dict[str, Any]], progress: Progress) -> None:
    """The first time: ``seeds``, the candidates to beat. Every time: trials a kill or Ctrl-C cut
    short are marked failed and queued again, to resume their run directories."""
    from optuna.trial import TrialState

    if not study.user_attrs.get("seeded"):
        for choice in seeds:
            study.enqueue_trial(choice)
        study.set_user_attr("seeded", True)
    retried = list(study.user_attrs.get("retried", []))  # a finished trial's own attributes are frozen
    for t in study.get_trials(deepcopy=False):
        cut = t.state == TrialState.RUNNING or (t.state == TrialState.FAIL and t.user_attrs.get("resumable"))
        if not cut or t.number in retried:
            continue
        if t.state == TrialState.RUNNING:  # its process was killed
            study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
        retried.append(t.number)
        study.set_user_attr("retried", retried)
        params = dict(t.params)
        if "clamped_from" in t.user_attrs:  # its run is at the clamped target: resume that one
            params["mac_reduction"] = t.user_attrs["choice"]["mac_reduction"]
        study.enqueue_trial(params, user_attrs={"resume_dir": t.user_attrs.get("run_dir"), "retry_of": t.number})
        progress.message(f"trial {t.number} was cut short: queued again, to resume {t.user_attrs.get('run_dir')}")


def queue_milder(study: Any, c: Candidate, max_drop: float, progress: Progress) -> None:
    """A pruned candidate that just missed the allowed drop is queued again, pruned less (see
    space.milder), ahead of what TPE would sample: with a combination (prune + KD + int8) over the
    limit by a little, the same combination pruned less is the likely winner. Once per candidate."""
    queued = any(t.user_attrs.get("milder_of") == c.number for t in study.get_trials(deepcopy=False))
    if c.state != "complete" or c.twin is not None or c.get("feasible") or queued:
        return
    precision_drop = unpruned_measure(study, c.choice.get("quantize"), "drop") or 0.0
    reached = c.get("mac_reduction") or c.choice.get("mac_reduction", 1.0)
    ask = milder(c.choice, reached, c.get("drop"), precision_drop, max_drop)
    if ask is None:
        return
    study.enqueue_trial(ask, user_attrs={"milder_of": c.number})
    progress.message(f"  #{c.number} missed the drop by {c.get('drop') - max_drop:.2f} pt: queued again, "
                     f"pruned less: {describe(ask)}")


def twins(study: Any) -> dict[str, int]:
    """Pruned models already judged: model key -> the first trial that built it (finished, or
    stopped by successive halving; not one cut short by the budget or a kill)."""
    from optuna.trial import TrialState

    out: dict[str, int] = {}
    for t in study.get_trials(deepcopy=False):
        halved = t.state == TrialState.PRUNED and t.user_attrs.get("stopped") == "pruned"
        judged = t.state == TrialState.COMPLETE or halved
        if judged and "model_key" in t.user_attrs and "same_as" not in t.user_attrs:
            out.setdefault(t.user_attrs["model_key"], t.number)
    return out


def float_twins(study: Any, out: Path) -> dict[str, FloatTwin]:
    """Fine-tuned float models already built: float key (kept channels, fine-tune length) -> the
    first finished trial whose model file is still there."""
    from optuna.trial import TrialState

    found: dict[str, FloatTwin] = {}
    for t in study.get_trials(deepcopy=False):
        key, model = t.user_attrs.get("float_key"), t.user_attrs.get("float_model")
        if t.state == TrialState.COMPLETE and key and model and key not in found:
            path = trial_path(out, model)
            if path.is_file():
                found[key] = FloatTwin(t.number, path, int(t.user_attrs.get("epochs") or 0))
    return found


def unpruned_measure(study: Any, quantize: str, key: str) -> float | None:
    """``key`` (cost_ratio, drop) of the first finished trial that ran ``quantize`` without pruning:
    what that precision alone did to the starting model. QAT deploys the same int8 program as
    static, so static's stands in until QAT's own is known. None when no such trial finished."""
    found: dict[str, float] = {}
    for c in finished(study):
        if c.state == "complete" and c.choice.get("mac_reduction", 1.0) < NO_PRUNING and c.get(key) is not None:
            found.setdefault(c.choice.get("quantize"), float(c.get(key)))
    return found.get(quantize, found.get("static") if quantize == "qat" else None)


def precision_factor(study: Any, quantize: str) -> float:
    """What ``quantize`` did to the starting model's cost, 1.0 until its trial without pruning finished."""
    return 1.0 if quantize == "none" else unpruned_measure(study, quantize, "cost_ratio") or 1.0


def same_as(trial: Any, number: int | None) -> float:
    """A candidate whose pruned model an earlier trial built takes that trial's outcome."""
    import optuna
    from optuna.trial import TrialState

    twin = next(t for t in trial.study.get_trials(deepcopy=False) if t.number == number)
    trial.set_user_attr("same_as", number)
    for key, value in twin.user_attrs.items():  # its measures and model; this trial keeps its own choice and run
        if key not in OWN_ATTRS:
            trial.set_user_attr(key, value)
    for key, value in twin.constraints.items():
        trial.set_constraint(key, value)
    if twin.state == TrialState.PRUNED:
        raise optuna.TrialPruned(f"the same pruned model as trial {number}")
    return float(twin.value)


def trials_done(study: Any) -> int:
    """Trials that count against a trial budget: finished, pruned or failed (not those cut short and queued again)."""
    retried = set(study.user_attrs.get("retried", []))
    return sum(1 for t in study.get_trials(deepcopy=False) if t.state.is_finished() and t.number not in retried)


def finished(study: Any) -> list[Candidate]:
    return [candidate(t) for t in study.get_trials(deepcopy=False) if t.state.is_finished()]


def candidate(t: Any) -> Candidate:
    state = {"COMPLETE": "complete", "PRUNED": "pruned"}.get(t.state.name, "failed")
    return Candidate(t.number, state, dict(t.user_attrs.get("choice") or t.params), dict(t.user_attrs))
