"""A training step that leaves the model at chance level is reported as collapsed, not as a result."""

from __future__ import annotations

from distillcli.engine.pipeline import Pipeline
from distillcli.progress import SilentProgress
from distillcli.recipe import validate_raw
from tests.conftest import tiny_recipe


class _Messages(SilentProgress):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def message(self, text: str) -> None:
        self.lines.append(text)


def _run(tmp_path, steps: list[dict]) -> tuple[list, list[str]]:
    progress = _Messages()
    recipe = tiny_recipe(steps=steps)
    recipe.pop("teacher")
    result = Pipeline(validate_raw(recipe), progress, out=tmp_path / "run").run()
    return result.record.steps, progress.lines


def test_a_step_that_learned_nothing_warns_and_records_it(tmp_path, one_thread):
    steps, lines = _run(tmp_path, [{"train": {"epochs": 3, "lr": 1e-9}}])  # the random start, kept
    assert steps[0].measures.top1 <= 37.5  # within 1.5x of chance on 4 classes
    assert "chance level" in steps[0].warnings[0]
    assert any(line.startswith("warning: step 0 (train)") and "collapsed" in line for line in lines)


def test_a_step_that_learned_does_not_warn(tmp_path, one_thread):
    steps, lines = _run(tmp_path, [{"train": {"epochs": 3, "lr": 0.05}}])
    assert steps[0].measures.top1 > 37.5
    assert not steps[0].warnings
    assert not any("chance level" in line for line in lines)
