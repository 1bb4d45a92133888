"""What a run has made so far: the teacher and student, how many steps changed each, the
file that holds each one's latest version; and the checkpoint that describes all of it at a
step boundary (plus the running step's training loops, see training/fit.py).

A model that no step has changed yet is not saved: the engine rebuilds it from the recipe
exactly (the seed fixes its initial weights). A changed one is saved once per version into
checkpoints/, and files no checkpoint refers to any more are removed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from distillcli.data.bundle import DataBundle
from distillcli.modelfile import load_model, model_suffix
from distillcli.models.handle import ModelHandle
from distillcli.training.checkpoint import Checkpointer, rng_state, set_rng_state

TARGETS = ("teacher", "student")
SaveFn = Callable[[ModelHandle, Path], None]


class RunState:
    def __init__(self, data: DataBundle, student_rebuilt: bool) -> None:
        self.data = data
        self.student_rebuilt = student_rebuilt  # False when the student copies the teacher on first use
        self.models: dict[str, ModelHandle | None] = {"teacher": None, "student": None}
        self.versions = {"teacher": 0, "student": 0}  # how many steps changed each model
        self.files: dict[str, Path | None] = {"teacher": None, "student": None}  # each model's latest file
        self.checkpointer = Checkpointer(None)
        self._boundary: dict[str, Any] = {}

    def changed(self, target: str, model: ModelHandle) -> None:
        self.models[target] = model
        self.versions[target] += 1
        self.files[target] = None

    def _file_name(self, target: str) -> str | None:
        handle = self.models[target]
        rebuilt = target == "teacher" or self.student_rebuilt
        if handle is None or (self.versions[target] == 0 and rebuilt):
            return None
        return f"{target}-v{self.versions[target]}{model_suffix(handle)}"

    def boundary(self, step: int, record: dict[str, Any], recipe: dict[str, Any], save: SaveFn) -> None:
        """Checkpoint the state at the start of ``step``."""
        folder = self.checkpointer.folder
        if folder is None:
            return
        names = {}
        for target in TARGETS:
            name, handle = self._file_name(target), self.models[target]
            if name is not None and handle is not None and not (folder / name).exists():
                save(handle, folder / name)
            names[target] = name
        self._boundary = {"step": step, "models": names, "versions": dict(self.versions), "rng": rng_state(),
                          "loader_epoch": self.data.train.epoch,
                          "files": {t: str(p) if p else None for t, p in self.files.items()}, "record": record,
                          "recipe": recipe}
        self.write([])
        for old in folder.iterdir():  # model files no checkpoint refers to any more
            if old.name not in (*names.values(), "state.pt") and not old.name.startswith("."):
                old.unlink()

    def update_record(self, record: dict[str, Any]) -> None:
        """Replace the boundary's record (e.g. to count a resume) without moving the boundary."""
        self._boundary["record"] = record

    def write(self, fits: list[dict[str, Any]]) -> None:
        """Checkpoint the boundary state plus the running step's training loops."""
        self.checkpointer.write({**self._boundary, "fits": fits})

    def restore(self, saved: dict[str, Any], folder: Path) -> None:
        """Models, random state and data position as they were at the saved boundary."""
        for target in TARGETS:
            self.versions[target] = saved["versions"][target]
            if saved["models"][target] is not None:
                self.models[target] = load_model(folder / saved["models"][target]).handle
            if saved["files"][target]:
                self.files[target] = Path(saved["files"][target])
        set_rng_state(saved["rng"])
        self.data.train.set_epoch(saved["loader_epoch"])  # steps may read training batches before they fit
        self._boundary = {k: v for k, v in saved.items() if k not in ("fits", "format", "version")}
