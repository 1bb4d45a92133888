"""distill auto: a tiny search on synthetic data, its outputs, honesty, budget and resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.conftest import run_cli, tiny_recipe

pytestmark = pytest.mark.usefixtures("one_thread")


def _search(teacher: Path, out: Path, budget: str = "3 trials", **auto):
    from distillcli.auto.config import split_auto_recipe
    from distillcli.auto.run import run_auto
    from distillcli.progress import SilentProgress

    data = tiny_recipe()["data"]
    raw = {"name": "tiny", "seed": 0, "device": "cpu", "data": data, "teacher": {"checkpoint": str(teacher)},
           "auto": {"objective": "macs", "budget": budget, "max_epochs": 3, "max_drop": 5.0,
                    "sensitivity_ratios": [0.5], "round_to": 8, **auto}}  # auto's multiple differs per CPU
    base, cfg = split_auto_recipe(raw, "test")
    return run_auto(base, cfg, out, SilentProgress())


@pytest.fixture(scope="module")
def teacher(tmp_path_factory) -> Path:
    from distillcli.engine.pipeline import Pipeline
    from distillcli.progress import SilentProgress
    from distillcli.recipe import validate_raw

    recipe = tiny_recipe(steps=[{"train": {"model": "teacher", "epochs": 3, "lr": 0.05}}],
                         report={"latency": False, "formats": ["json"]})
    out = tmp_path_factory.mktemp("teacher") / "run"
    Pipeline(validate_raw(recipe), SilentProgress(), out=out).run()
    return out / "models" / "teacher.pt"


class SpyLoader:
    """Counts the batches drawn from the test split, and whether the final measurement drew them."""

    def __init__(self, inner, log: list[bool], final: list[bool]) -> None:
        self.inner, self.log, self.final = inner, log, final

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def __len__(self) -> int:
        return len(self.inner)

    def __iter__(self):
        self.log.append(bool(self.final))
        return iter(self.inner)


@pytest.fixture(scope="module")
def searched(teacher, tmp_path_factory):
    """One search whose test split is watched: (out, summary, draws from the test split)."""
    import distillcli.auto.run as auto_run
    import distillcli.engine.models as engine_models  # where every run loads its data (recipe_data)

    draws: list[bool] = []
    final: list[bool] = []
    load, measure = engine_models.load_data, auto_run.measure_final

    def spied_load(*a, **kw):
        bundle = load(*a, **kw)
        bundle.val = SpyLoader(bundle.val, draws, final)
        return bundle

    def spied_measure(*a, **kw):
        final.append(True)
        try:
            return measure(*a, **kw)
        finally:
            final.clear()

    engine_models.load_data, auto_run.measure_final = spied_load, spied_measure
    try:
        out = tmp_path_factory.mktemp("auto") / "out"
        # a wide limit: on 26 validation images a 2x plan may lose 15 pt, and the search must choose one
        _, _, summary = _search(teacher, out, max_drop=20.0)
    finally:
        engine_models.load_data, auto_run.measure_final = load, measure
    return out, summary, draws


def test_search_writes_table_chart_and_best(searched):
    out, summary, _ = searched
    for name in ("candidates.md", "candidates.csv", "candidates.png", "auto.json", "best.yaml", "best.pt",
                 "study.journal"):
        assert (out / name).is_file(), name
    assert summary["trials"]["complete"] + summary["trials"]["pruned"] + summary["trials"]["failed"] == 3
    best = summary["best"]
    assert best is not None and best["val"]["drop"] <= 20.0
    assert best["test"]["split"] == "test" and best["test"]["chosen"]["top1"] is not None
    table = (out / "candidates.md").read_text()
    assert table.count("\n| #") == 3 and "| * |" in table  # a row per trial, the chosen one starred
    assert (out / "candidates.png").read_bytes()[:4] == b"\x89PNG"


def test_test_split_is_never_used_to_choose(searched):
    out, summary, draws = searched
    assert draws and all(draws), "the test split was read outside the final measurement"
    assert summary["chosen_on"] == "val_split of train"
    for metrics in (out / "trials").glob("*/metrics.json"):
        record = json.loads(metrics.read_text())
        assert record["data"]["measured_on"] == "val"
        assert all(row["val_top1"] is not None and row["test_top1"] is None
                   for step in record["steps"] for row in step["curve"])


def test_best_yaml_validates_and_reruns_to_the_same_model(searched, tmp_path):
    from distillcli.engine.pipeline import Pipeline
    from distillcli.progress import SilentProgress
    from distillcli.recipe import load_recipe

    out, summary, _ = searched
    proc = run_cli("validate", str(out / "best.yaml"))
    assert proc.returncode == 0, proc.stderr
    assert "auto" not in yaml.safe_load((out / "best.yaml").read_text())  # a plain recipe
    record = Pipeline(load_recipe(out / "best.yaml"), SilentProgress(), out=tmp_path / "rerun").run().record
    final = record.final_step().measures
    test = summary["best"]["test"]
    assert final.top1 == pytest.approx(test["chosen"]["top1"], abs=0.01)
    assert final.macs == pytest.approx(summary["best"]["val"]["cost"], rel=1e-6)


def test_budget_in_trials_and_time_is_respected(teacher, tmp_path):
    _, _, summary = _search(teacher, tmp_path / "n", budget="1 trial")
    assert sum(summary["trials"].values()) == 1
    _, _, summary = _search(teacher, tmp_path / "t", budget="1s", max_epochs=9)
    assert sum(summary["trials"].values()) <= 1  # the reference alone may spend it; a running trial stops at an epoch


def test_a_latency_ratio_divides_by_the_start_timed_beside_the_candidate(teacher, tmp_path, monkeypatch):
    """The machine's load drifts over a search: each trial's speed-up comes from its own run, where the
    starting model is timed in alternation with the candidate, not from one timing at the start."""
    import distillcli.engine.measuring as measuring

    timed = []
    interleaved = measuring.interleaved_latency
    monkeypatch.setattr(measuring, "interleaved_latency", lambda *a, **kw: timed.append(a[3]) or interleaved(*a, **kw))
    out = tmp_path / "lat"
    _, _, summary = _search(teacher, out, budget="1 trial", objective="latency", batch_size=4,
                            quantize=["none"], max_drop=100.0)
    record = json.loads((out / "trials" / "000" / "metrics.json").read_text())
    start = record["baseline"]["measures"]["latency_ms"]["4"]
    final = record["steps"][-1]["measures"]["latency_ms"]["4"]
    assert timed and all(batches == [4] for batches in timed)  # after every step that changed the model
    assert summary["best"]["val"]["cost_ratio"] == pytest.approx(final / start, rel=1e-9)


def test_interrupted_search_resumes_without_repeating_trials(teacher, tmp_path, monkeypatch):
    from distillcli.auto.trial import TrialObserver
    from distillcli.errors import Interrupted

    out = tmp_path / "out"
    _search(teacher, out, budget="2 trials")
    finished = {p.parent.name: p.stat().st_mtime_ns for p in (out / "trials").glob("*/metrics.json")}
    assert len(finished) == 2
    epoch = TrialObserver.epoch

    def ctrl_c(self, row):  # Ctrl-C during the next trial's first fine-tune epoch
        raise KeyboardInterrupt

    monkeypatch.setattr(TrialObserver, "epoch", ctrl_c)
    with pytest.raises(Interrupted):
        _search(teacher, out, budget="4 trials")
    monkeypatch.setattr(TrialObserver, "epoch", epoch)
    _, _, summary = _search(teacher, out, budget="4 trials")
    assert json.loads((out / "auto.json").read_text()) == summary
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    study = optuna.load_study(study_name="auto", storage=JournalStorage(JournalFileBackend(str(out / "study.journal"))))
    trials = study.get_trials()
    retried = [t for t in trials if "retry_of" in t.user_attrs]
    cut = [t for t in trials if t.user_attrs.get("resumable")]
    assert len(cut) == 1 and len(retried) == 1 and retried[0].user_attrs["run_dir"] == cut[0].user_attrs["run_dir"]
    for name, mtime in finished.items():  # the first two trials were not run again
        assert (out / "trials" / name / "metrics.json").stat().st_mtime_ns == mtime
    counted = [t for t in trials if t.state.is_finished() and t.number not in study.user_attrs["retried"]]
    assert len(counted) == 4


def test_a_search_continues_from_another_working_directory(teacher, tmp_path, monkeypatch):
    """Trials record their folders relative to the search's, so `--out runs/auto` started in one
    directory continues when given by its absolute path from another (as a benchmark script does)."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    monkeypatch.chdir(tmp_path / "a")
    _search(teacher, Path("runs/auto"), budget="1 trial", max_drop=100.0)
    monkeypatch.chdir(tmp_path / "b")
    out = tmp_path / "a" / "runs" / "auto"
    _, _, summary = _search(teacher, out, budget="2 trials", max_drop=100.0)
    assert sum(summary["trials"].values()) == 2, summary
    assert summary["best"] is not None and (out / summary["best"]["run_dir"] / "recipe.yaml").is_file()
    assert (out / "best.yaml").is_file() and not (tmp_path / "b" / "runs").exists()


def test_a_target_that_rounds_to_an_earlier_model_reuses_its_outcome(teacher, tmp_path, monkeypatch):
    """With channel counts rounded to 4, asking 1.8x or 2.0x fewer MACs builds the same model
    (2.09x, the plan nearest both): the second trial stops after pruning, takes the first one's
    outcome and is never chosen."""
    import distillcli.auto.search as search

    asks = [{"mac_reduction": m, "guide": "layer", "quantize": "none", "epochs": 1} for m in (1.8, 2.0)]
    monkeypatch.setattr(search, "seed_candidates", lambda cfg: asks)
    out = tmp_path / "out"
    result, _, summary = _search(teacher, out, budget="2 trials", round_to=4)
    first, second = result.candidates
    assert first.state == second.state == "complete" and first.twin is None and second.twin == 0
    assert second.get("top1") == first.get("top1") and second.get("cost") == first.get("cost")
    assert first.get("mac_reduction") == pytest.approx(2.094, abs=0.01)
    assert "channel 2.09x (layer; asked 1.80x)" in first.description
    assert summary["best"]["trial"] == 0
    table = (out / "candidates.md").read_text()
    assert "| #1 | complete (same model as #0) | channel 2.09x (layer; asked 2.00x)" in table
    # the twin ran its pruning step only: no fine-tune epoch was spent on it
    record = json.loads((out / "trials" / "001" / "metrics.json").read_text())
    assert [s["kind"] for s in record["steps"]] == ["prune"] and record["run"]["status"] == "interrupted"


def test_shipped_auto_recipe_and_bad_sections_are_checked(tmp_path):
    from distillcli.auto.config import load_auto_recipe, split_auto_recipe
    from distillcli.errors import RecipeError
    from tests.conftest import ROOT

    base, cfg = load_auto_recipe(ROOT / "recipes/auto/resnet56_cifar10.yaml", [])
    assert cfg.objective == "latency" and cfg.limits() == (5400.0, None) and base["teacher"]["arch"] == "resnet56"
    with pytest.raises(RecipeError) as e:
        split_auto_recipe({"steps": [], "teacher": {"arch": "cnn"}, "auto": {"budget": "soon", "objetive": "size"}},
                          "r.yaml")
    text = str(e.value)
    for part in ("steps: not part of an auto recipe", "teacher.checkpoint", "auto.budget", "auto.objetive"):
        assert part in text


def test_validate_checks_an_auto_recipe(teacher, tmp_path):
    """`distill validate` takes an auto recipe: the auto section and the plain part every trial extends."""
    raw = {"name": "tiny", "data": tiny_recipe()["data"], "teacher": {"checkpoint": str(teacher)},
           "auto": {"objective": "latency", "max_drop": 0.5, "budget": "10m"}}
    (tmp_path / "auto.yaml").write_text(yaml.safe_dump(raw))
    proc = run_cli("validate", str(tmp_path / "auto.yaml"), "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["auto"]["objective"] == "latency"
    raw["teacher"]["checkpoint"] = str(tmp_path / "missing.pt")
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(raw))
    proc = run_cli("validate", str(tmp_path / "bad.yaml"))
    assert proc.returncode == 2 and "teacher.checkpoint: file not found" in proc.stderr and "Traceback" not in proc.stderr


def test_a_start_that_trained_on_the_held_out_split_is_warned_about():
    from distillcli.auto.score import Reference, seen_warning

    assert seen_warning(Reference(93.4, 1.0)) is None
    warning = seen_warning(Reference(99.98, 1.0))
    assert warning is not None and "99.98 %" in warning and "data.val_split" in warning


def test_the_search_first_tries_int8_pruning_and_both_together():
    from distillcli.auto.config import AutoConfig
    from distillcli.auto.space import seed_candidates

    seeds = seed_candidates(AutoConfig(objective="latency", quantize=["none", "static"], max_epochs=3))
    assert [(s["mac_reduction"], s["quantize"]) for s in seeds] == [(1.0, "static"), (2.0, "none"), (2.0, "static")]
    assert all(s["epochs"] == 3 for s in seeds[1:])


def test_a_guided_target_past_what_its_free_layers_give_is_clamped(teacher, tmp_path, monkeypatch):
    """Sensitivity guidance keeps sensitive layers whole; a MAC target that the other layers cannot give
    alone is lowered to the most they give, and the trial runs, instead of failing."""
    import distillcli.auto.search as search

    ask = {"mac_reduction": 3.5, "guide": "sensitivity", "layer_budget": 0.5, "quantize": "none", "epochs": 1}
    monkeypatch.setattr(search, "seed_candidates", lambda cfg: [ask])
    monkeypatch.setattr(search, "guided_overrides", lambda rows, top1, budget: {r.layer: 0.0 for r in rows[:-1]})
    result, _, _ = _search(teacher, tmp_path / "out", budget="1 trial", max_mac_reduction=4.0)
    (trial,) = result.candidates
    assert trial.state == "complete", trial.attrs
    assert trial.get("clamped_from") == 3.5
    reached = trial.get("mac_reduction")
    assert 1.0 < reached < 3.5 and trial.choice["mac_reduction"] == pytest.approx(reached, rel=0.01)


def test_the_fastest_candidates_are_timed_again_side_by_side_before_the_choice(teacher, tmp_path, monkeypatch):
    """Each trial timed itself minutes apart from the others: the choice on latency follows one timing of
    the top candidates and the starting model in alternation, in one process."""
    import distillcli.auto.retime as retime
    import distillcli.auto.search as search
    import distillcli.measure as measure

    import optuna

    asks = [{"mac_reduction": m, "guide": "layer", "quantize": "none", "epochs": 1} for m in (1.5, 1.9)]
    monkeypatch.setattr(search, "seed_candidates", lambda cfg: asks)
    monkeypatch.setattr(optuna.pruners, "SuccessiveHalvingPruner", lambda **kw: optuna.pruners.NopPruner())
    timed: list[int] = []
    alternated = measure.alternated_latency
    monkeypatch.setattr(measure, "alternated_latency",
                        lambda models, *a, **kw: timed.append(len(models)) or alternated(models, *a, **kw))
    out = tmp_path / "out"
    result, _, summary = _search(teacher, out, budget="2 trials", objective="latency", batch_size=4,
                                 quantize=["none"], max_drop=100.0)
    assert retime.RETIME_TOP >= 2 and timed[-1] == 3  # the start and both candidates, in one alternation
    again = {c.number: c.get("retimed_ratio") for c in result.candidates}
    assert all(r is not None and r > 0 for r in again.values())
    assert summary["best"]["trial"] == min(again, key=again.get)
    assert summary["best"]["val"]["retimed_ratio"] == pytest.approx(again[summary["best"]["trial"]])
    assert "re-timed side by side" in (out / "candidates.md").read_text()


def test_the_seeded_combination_quantizes_its_twins_fine_tuned_model(teacher, tmp_path):
    """The shipped seeds: int8 alone, channel 2x + KD, then 2x + KD + int8. The third builds the
    second's fine-tuned model: it trains nothing, runs int8 on that model file, is judged on its
    int8 cost, and its best.yaml-to-be holds the whole recipe."""
    out = tmp_path / "out"
    result, _, _ = _search(teacher, out, objective="latency", quantize=["none", "static"], batch_size=16,
                           latency_repeats=1, budget="3 trials")
    int8, tuned, combo = result.candidates
    assert [c.state for c in result.candidates] == ["complete"] * 3, [c.attrs for c in result.candidates]
    assert combo.get("from_trial") == 1 and tuned.get("from_trial") is None and combo.twin is None
    assert combo.get("rung_cost_factor") == pytest.approx(int8.get("cost_ratio"))
    assert tuned.get("rung_cost_factor") == 1.0
    assert combo.get("epochs") == tuned.get("epochs") == 3  # the twin's epochs, none of its own
    assert combo.get("float_key") == tuned.get("float_key") and combo.get("model_key") != tuned.get("model_key")
    record = json.loads((out / combo.get("run_dir") / "metrics.json").read_text())
    assert [s["kind"] for s in record["steps"]] == ["quantize"] and record["run"]["status"] == "ok"
    assert combo.get("model_file").endswith(".pt2") and combo.get("cost") != tuned.get("cost")
    whole = yaml.safe_load((out / combo.get("run_dir") / "candidate.yaml").read_text())
    assert [next(iter(s)) for s in whole["steps"]] == ["prune", "distill", "quantize"]
    assert whole["student"]["from"] == "teacher"
    table = (out / "candidates.md").read_text()
    assert "| #2 | complete (precision on #1's model) |" in table


def test_a_candidate_bound_for_int8_is_ranked_at_a_rung_by_its_estimated_int8_cost():
    """Successive halving compares candidates after each fine-tune epoch, before any precision step:
    a candidate bound for int8 reports its float cost times what int8 did to the starting model."""
    from distillcli.auto.score import Reference
    from distillcli.auto.trial import TrialObserver
    from distillcli.record import EpochRecord, Measures, StepRecord

    class Trial:
        def __init__(self) -> None:
            self.reports: list[tuple[float, int]] = []
            self.user_attrs: dict = {}

        def report(self, value: float, step: int) -> None:
            self.reports.append((value, step))

        def set_user_attr(self, key: str, value) -> None:
            self.user_attrs[key] = value

        def should_prune(self) -> bool:
            return False

    def tracked(factor: float) -> Trial:
        trial = Trial()
        observer = TrialObserver(trial, Reference(top1=90.0, cost=10.0), "latency", 16, 1.0, None,
                                 rest={"epochs": 2, "quantize": "static"}, cost_factor=factor)
        float_step = StepRecord(index=0, kind="distill", target="student", measures=Measures(latency_ms={"16": 6.0}))
        observer.step(float_step, [float_step])
        observer.epoch(EpochRecord(epoch=1, lr=0.01, train_loss=1.0, train_top1=80.0, val_top1=89.5))
        int8_step = StepRecord(index=1, kind="quantize", target="student", measures=Measures(latency_ms={"16": 2.5}))
        observer.step(int8_step, [float_step, int8_step])
        observer.epoch(EpochRecord(epoch=2, lr=0.01, train_loss=1.0, train_top1=80.0, val_top1=89.5))  # QAT: after its step, the measured cost
        return trial

    assert [v for v, _ in tracked(0.4).reports] == pytest.approx([0.24, 0.25])
    assert [v for v, _ in tracked(1.0).reports] == pytest.approx([0.6, 0.25])


def test_a_pruned_candidate_fine_tunes_with_the_alpha_of_the_compression_fine_tunes():
    # the distill step's own default (0.5) was chosen for students from scratch; a pruned model's
    # KD fine-tune weighs the teacher as prune's fine-tune does
    from distillcli.auto.config import AutoConfig
    from distillcli.auto.space import trial_steps
    from distillcli.losses.options import SelfDistillOptions
    from distillcli.recipe import validate_raw

    choice = {"mac_reduction": 2.0, "guide": "layer", "quantize": "none", "epochs": 3}
    steps = trial_steps(choice, AutoConfig(objective="macs"), {})
    recipe = validate_raw({**tiny_recipe(), "teacher": {"arch": "resnet8"}, "student": {"from": "teacher"},
                           "steps": [{"train": {"model": "teacher", "epochs": 1}}, *steps]})
    assert recipe.steps[2].distill.alpha == SelfDistillOptions().alpha == 0.9


def test_a_latency_search_on_a_gpu_leaves_int8_out(monkeypatch, tmp_path):
    """int8 programs run on the CPU: on a GPU their times would be ranked against the GPU's, so there
    the search space drops them (bf16 / fp16 programs move to the GPU), and says so; on the CPU it is
    left alone."""
    import torch

    from distillcli import runtime
    from distillcli.auto.config import AutoConfig
    from distillcli.auto.search import Search
    from distillcli.progress import SilentProgress

    said: list[str] = []

    class Heard(SilentProgress):
        def message(self, text: str) -> None:
            said.append(text)

    progress = Heard()
    cfg = AutoConfig(objective="latency", quantize=["none", "static", "bf16"])
    monkeypatch.setattr(runtime, "resolve_device", lambda d: torch.device("cuda" if d == "cuda" else "cpu"))
    base = {"name": "x", "device": "cuda", "data": {"name": "synthetic"}, "teacher": {"checkpoint": "t.pt"}}
    on_gpu = Search(base, cfg, tmp_path / "gpu", progress)
    assert on_gpu.cfg.quantize == ["none", "bf16"] and on_gpu.resolved["auto"]["quantize"] == ["none", "bf16"]
    assert len(said) == 1 and "quantize's static programs run on the CPU" in said[0]
    on_cpu = Search({**base, "device": "cpu"}, cfg, tmp_path / "cpu", progress)
    assert on_cpu.cfg.quantize == ["none", "static", "bf16"] and len(said) == 1
    size = Search(base, cfg.model_copy(update={"objective": "size"}), tmp_path / "size", progress)
    assert size.cfg.quantize == ["none", "static", "bf16"]
    only_int8 = Search(base, cfg.model_copy(update={"quantize": ["static", "qat"]}), tmp_path / "gpu8", progress)
    assert only_int8.cfg.quantize == ["none"]
