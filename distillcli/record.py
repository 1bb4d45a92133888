"""The run record: typed run / step / epoch records, written as metrics.json.

Everything a report, a CI gate or a search reads comes from here, not from dict keys spread
over the code. The schema is versioned and published (`distill schema --metrics`).
The baseline that deltas are measured against is decided once, here (see ``RunRecord.offer_baseline``).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from distillcli.facts import Autocast, StepFacts, facts_from_v3
from distillcli.machine import Machine

SCHEMA = "distillcli.metrics"
SCHEMA_VERSION = 4  # 4: typed step facts (info) and warnings; 3: per-epoch test_* and val_*; data.test_samples
WIDE_SPREAD = 0.25  # a latency whose interquartile range exceeds this share of its median is flagged


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EpochRecord(_Record):
    """One training epoch: what the loop saw on the training data, then the measures on the
    validation split (``val_*``: the share data.val_split holds out of the training data; None
    without it) and on the test split (``test_*``; None in a search, which never looks at it)."""

    epoch: int
    lr: float
    train_loss: float
    train_top1: float
    val_loss: float | None = None
    val_top1: float | None = None
    val_top5: float | None = None
    test_loss: float | None = None
    test_top1: float | None = None
    test_top5: float | None = None
    images_per_s: float = 0.0
    seconds: float = 0.0
    teacher_seconds: float | None = Field(None, description="of `seconds`, the teacher's forward passes (None: no "
                                                            "teacher ran in this loop)")
    precision: Autocast = Field("fp32", description="the autocast precision the loop ran in")
    compiled: bool = Field(False, description="whether the forward passes ran compiled (torch.compile)")

    @model_validator(mode="before")
    @classmethod
    def _from_v2(cls, row: Any) -> Any:
        """A version-2 row (metrics.json, or a checkpoint's loop state) named its one measure val_* and
        its split in ``split``: on "test" (the default), those were the test split's."""
        if not isinstance(row, dict) or "split" not in row:
            return row
        row = dict(row)
        if row.pop("split") == "test":
            row.update({f"test_{k}": row.pop(f"val_{k}") for k in ("loss", "top1", "top5") if f"val_{k}" in row})
        return row


class Measures(_Record):
    """A model measured as it is: accuracy on the validation split, cost, size, speed."""

    top1: float | None = None
    top5: float | None = None
    loss: float | None = None
    samples: int = 0
    per_class_top1: list[float | None] = Field(default_factory=list)
    confusion: list[list[int]] | None = Field(None, description="counts: rows = true class, columns = predicted")
    params: int | None = None
    nonzero_params: int | None = None
    macs: int | None = None
    file_bytes: int | None = None
    latency_ms: dict[str, float] = Field(default_factory=dict, description="median ms per batch size")
    latency_iqr_ms: dict[str, float] = Field(default_factory=dict, description="interquartile range of those times")
    first_call_s: dict[str, float] = Field(default_factory=dict, description="a .pt2 program's first call per input "
                                           "shape: what loading it costs (the compile, when compiled)")
    threads: int | None = None
    device: str | None = Field(None, description="where the model computed (a .pt2 program: the CPU, whatever the "
                                                "run's device)")
    runtime: str | None = Field(None, description="what ran a model file's graph, e.g. onnxruntime and its provider")

    def wide_latency(self, limit: float = WIDE_SPREAD) -> list[str]:
        """Batch sizes whose latency spread (IQR / median) exceeds ``limit``: not to be trusted."""
        return [b for b, ms in self.latency_ms.items() if ms and self.latency_iqr_ms.get(b, 0.0) / ms > limit]

    def summary(self) -> dict[str, Any]:
        """The measures without the per-class lists (what headers and summaries keep)."""
        return self.model_dump(exclude={"per_class_top1", "confusion"})


class BestEpoch(_Record):
    """The epoch of highest top-1 on the validation split, and its top-1 on the test split."""

    epoch: int
    val_top1: float
    test_top1: float | None = None


class TeacherCacheRecord(_Record):
    """The teacher-output store in one step: epochs whose teacher outputs were read (hits) or
    computed (misses), the key's files on disk, and the teacher's forward time."""

    mode: Literal["auto", "off", "required"]
    key: str | None = Field(None, description="the store's key (None: outputs computed, not stored)")
    hits: int = 0
    misses: int = 0
    disk_bytes: int = Field(0, description="the key's entries on disk after the step")
    teacher_seconds: float | None = Field(None, description="the teacher's forward passes (CPU only; a GPU runs "
                                                            "asynchronously)")


class StepRecord(_Record):
    index: int
    kind: str
    target: Literal["student", "teacher"]
    options: dict[str, Any] = Field(default_factory=dict, description="the step's resolved options")
    seconds: float = Field(0.0, description="the step's own work")
    measure_seconds: float = Field(0.0, description="measuring the model after the step")
    model_file: str | None = Field(None, description="relative to the run directory")
    measures: Measures = Field(default_factory=Measures)
    curve: list[EpochRecord] = Field(default_factory=list)
    best: BestEpoch | None = Field(None, description="the curve's best epoch on the validation split (None without "
                                   "data.val_split: the test split chooses nothing); the model kept is the last")
    info: StepFacts | None = Field(None, description="what the step did, by kind (None: a step that records "
                                   "no facts)")
    warnings: list[str] = Field(default_factory=list, description="what went wrong without failing the step "
                                "(a model that learned nothing ...)")
    teacher_cache: TeacherCacheRecord | None = Field(None, description="steps that distil: the teacher-output store")


class Baseline(_Record):
    """What deltas and speed-ups are measured against."""

    source: Literal["teacher", "teacher_step", "start", "first_step"]
    label: str
    step: int | None = None
    measures: Measures


class TeacherRecord(_Record):
    """One of several teachers (recipe ``teachers:``), measured alone as it was loaded."""

    index: int
    arch: str
    checkpoint: str
    weight: float = Field(description="its share of the averaged logits (normalised: the shares sum to 1)")
    measures: Measures


# The order in which a baseline is preferred: a loaded teacher over a trained one, over the
# loaded starting model, over the first step's model.
_PREFERENCE = ("teacher", "teacher_step", "start", "first_step")


class RunInfo(_Record):
    name: str
    dir: str | None = None
    status: Literal["running", "ok", "failed", "interrupted"] = "running"
    error: str | None = None
    started: str | None = None
    finished: str | None = None
    seconds: float = 0.0
    device: str = "cpu"
    seed: int = 0
    threads: int = 1
    cpu_count: int | None = None
    load_average: float | None = Field(None, description="cores kept busy by other work when the run started "
                                                         "(Linux: sampled from /proc/stat; elsewhere the 1-minute "
                                                         "load average)")
    world_size: int = 1
    versions: dict[str, str] = Field(default_factory=dict)
    machine: Machine | None = Field(None, description="the machine the run ran on (its last leg, when resumed): "
                                    "CPU ISA, int8 extensions, cores, oneDNN, CUDA (None: an older record)")
    recipe_file: str | None = None
    recipe_hash: str = ""
    resumed: list[str] = Field(default_factory=list, description="times the run was resumed from a checkpoint")
    checkpoint_writes: int = 0
    checkpoint_seconds: float = Field(0.0, description="time spent writing checkpoints (all legs of the run)")


class DataInfo(_Record):
    name: str
    num_classes: int
    class_names: list[str]
    input_shape: list[int]
    train_samples: int
    test_samples: int = Field(description="the test split (0: not looked at, measured_on: val)")
    val_samples: int = Field(0, description="the validation split data.val_split holds out (0: off)")
    val_from: Literal["train", "test"] = Field("train", description="the split it is held out of (test: the test "
                                               "measures use the rest of the test split)")
    measured_on: Literal["test", "val"] = Field(
        "test", description="the split every step's measures were taken on: test, or val (a search comparing "
                            "candidates, which never looks at the test split)")


class RunRecord(_Record):
    schema_: Literal["distillcli.metrics"] = Field(SCHEMA, alias="schema")
    schema_version: Literal[4] = SCHEMA_VERSION
    run: RunInfo
    data: DataInfo
    baseline: Baseline | None = None
    teachers: list[TeacherRecord] = Field(default_factory=list, description="with several teachers: each one "
                                          "measured alone; the baseline is their ensemble")
    steps: list[StepRecord] = Field(default_factory=list)

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _from_older(cls, raw: Any) -> Any:
        if isinstance(raw, dict) and raw.get("schema_version") == 2:
            raw = _upgrade_v2(raw)
        return _upgrade_v3(raw) if isinstance(raw, dict) and raw.get("schema_version") == 3 else raw

    def offer_baseline(self, source: str, label: str, measures: Measures, step: int | None = None) -> None:
        """Keep ``measures`` as the baseline unless a preferred source already provided one."""
        current = self.baseline
        if current is None or _PREFERENCE.index(source) <= _PREFERENCE.index(current.source):
            self.baseline = Baseline(source=source, label=label, step=step, measures=measures)  # type: ignore[arg-type]

    def final_step(self, target: str = "student") -> StepRecord | None:
        return next((s for s in reversed(self.steps) if s.target == target), None)

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)


def _upgrade_v2(raw: dict[str, Any]) -> dict[str, Any]:
    """A version-2 record in version-3 names. v2's data.val_samples counted the test split and
    select_samples the validation split; its curve rows are upgraded by EpochRecord (a row without
    ``split`` was on the test split), and a best epoch chosen on the test split is dropped."""
    out = {**raw, "schema_version": 3}
    if isinstance(raw.get("data"), dict):
        data = dict(raw["data"])
        renamed = {new: data.pop(old) for old, new in (("val_samples", "test_samples"),
                                                        ("select_samples", "val_samples")) if old in data}
        if data.get("measured_on") == "val_split":
            data["measured_on"] = "val"
        out["data"] = {**data, **renamed}
    if isinstance(raw.get("steps"), list):
        out["steps"] = [_upgrade_v2_step(s) if isinstance(s, dict) else s for s in raw["steps"]]
    return out


def _upgrade_v2_step(step: dict[str, Any]) -> dict[str, Any]:
    curve = [{"split": "test", **r} if isinstance(r, dict) else r for r in step.get("curve", [])]
    on_test = any(isinstance(r, dict) and r["split"] == "test" for r in curve)
    return {**step, "curve": curve, "best": None if on_test else step.get("best")}


def _upgrade_v3(raw: dict[str, Any]) -> dict[str, Any]:
    """A version-3 record in version-4 form: each step's ``info`` dict becomes its kind's facts, and
    the warning the engine kept there moves to ``warnings``."""
    out = {**raw, "schema_version": SCHEMA_VERSION}
    if isinstance(raw.get("steps"), list):
        out["steps"] = [_upgrade_v3_step(s) if isinstance(s, dict) else s for s in raw["steps"]]
    return out


def _upgrade_v3_step(step: dict[str, Any]) -> dict[str, Any]:
    info = step.get("info", {})
    if not isinstance(info, dict):
        return step  # validation names it
    warning = info.get("warning")
    return {**step, "info": facts_from_v3(str(step.get("kind")), info),
            "warnings": [warning] if isinstance(warning, str) else []}


def teacher_share(curve: list[EpochRecord]) -> float | None:
    """The teacher's forward passes' share of a step's training time (None: no teacher ran)."""
    rows = [r for r in curve if r.teacher_seconds is not None]
    total = sum(r.seconds for r in rows)
    return sum(r.teacher_seconds or 0.0 for r in rows) / total if rows and total > 0 else None


def best_epoch(curve: list[EpochRecord]) -> BestEpoch | None:
    """The epoch of highest top-1 on the validation split; None without one (never the test split)."""
    rows = [r for r in curve if r.val_top1 is not None]
    if not rows:
        return None
    top = max(rows, key=lambda r: r.val_top1 or 0.0)
    return BestEpoch(epoch=top.epoch, val_top1=top.val_top1 or 0.0, test_top1=top.test_top1)


# What legitimately differs between two runs of the same recipe and seed: times, the machine's
# load, where the run lives and how it was started or resumed.
RUN_SPECIFIC = frozenset({"seconds", "measure_seconds", "images_per_s", "teacher_seconds", "latency_ms", "latency_iqr_ms",
                          "first_call_s", "started", "finished", "resumed", "dir", "recipe_file", "load_average",
                          "checkpoint_writes", "checkpoint_seconds", "teacher_cache"})


def comparable(metrics: Any) -> Any:
    """metrics.json without its run-specific fields: equal for two runs that computed the same."""
    if isinstance(metrics, dict):
        return {k: comparable(v) for k, v in metrics.items() if k not in RUN_SPECIFIC}
    if isinstance(metrics, list):
        return [comparable(v) for v in metrics]
    return metrics


def metrics_schema() -> dict[str, Any]:
    return RunRecord.model_json_schema(by_alias=True)
