"""The `auto:` section: what a search optimises, under which accuracy drop and budget, and
which techniques it may combine. Torch-free (pydantic only), so validating it is instant."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from distillcli.errors import RecipeError
from distillcli.facts import HalfKind

Objective = Literal["latency", "size", "macs"]
QuantMethod = Literal["none", "static", "qat", HalfKind]
_BUDGET = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|trials?)\s*$")
_SECONDS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600}


def parse_budget(text: str) -> tuple[float | None, int | None]:
    """'90m' | '2h' | '45s' -> (seconds, None); '30 trials' -> (None, 30)."""
    match = _BUDGET.match(text)
    if not match:
        raise ValueError(f"budget {text!r}: expected a time (90m, 2h, 45s) or a trial count (30 trials)")
    value, unit = float(match.group(1)), match.group(2)
    if unit.startswith("trial"):
        if value < 1 or value != int(value):
            raise ValueError(f"budget {text!r}: a whole number of trials, at least 1")
        return None, int(value)
    if value <= 0:
        raise ValueError(f"budget {text!r} must be positive")
    return value * _SECONDS[unit], None


class AutoConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    objective: Objective = Field("latency", description="what the chosen model has least of: latency (at "
                                 "batch_size, on the run's device), size (stored bytes, Deep Compression "
                                 "accounting) or macs")
    max_drop: float = Field(0.5, ge=0, le=100, description="the most top-1 (percentage points, on the validation "
                            "split) a candidate may lose against the starting model")
    budget: str = Field("60m", description="wall-clock time (90m, 2h, 45s) or a number of trials (30 trials), "
                        "over every rerun of the search")
    batch_size: int = Field(64, ge=1, le=4096, description="latency: the batch size it is measured at")
    val_split: float = Field(0.1, gt=0, le=0.5, description="share of the data held out to compare candidates on "
                             "(data.val_split, unless the data section sets it)")
    val_from: Literal["train", "test"] = Field(
        "train", description="the split val_split is held out of (data.val_from, unless the data section sets it): "
                             "test when the starting model trained on all the training data; the final measures "
                             "then use the rest of the test split")
    max_epochs: int = Field(9, ge=1, le=1000, description="the longest KD fine-tune a candidate gets")
    reduction_factor: int = Field(3, ge=2, le=10, description="successive halving: a rung keeps 1 in this many "
                                  "candidates, and fine-tune lengths grow by this factor (1, 3, 9 ...)")
    lr: float = Field(0.01, gt=0, le=10, description="peak learning rate of the fine-tunes")
    max_mac_reduction: float = Field(4.0, gt=1, le=100, description="latency/macs: the most channel pruning tried "
                                     "(times fewer MACs)")
    round_to: int | None = Field(None, ge=1, le=4096, description="channel pruning keeps channel counts a multiple "
                                 "of this (default: the prune step's auto, this machine's fast multiple; for int8 "
                                 "candidates its int8 kernels' one)")
    quantize: list[QuantMethod] = Field(default_factory=lambda: ["none", "static", "qat", "bf16", "fp16"],
                                        min_length=1, description="latency: the precisions tried after pruning (on a "
                                        "GPU without int8: its programs run on the CPU)")
    sensitivity: bool = Field(True, description="latency/macs: also try per-layer pruning amounts guided by a "
                              "sensitivity analysis of the starting model")
    sensitivity_ratios: list[float] = Field(default_factory=lambda: [0.3, 0.6], min_length=1, max_length=10,
                                            description="the per-layer ratios the sensitivity analysis tries")
    max_sparsity: float = Field(0.95, gt=0, lt=1, description="size: the most unstructured sparsity tried")
    clusters: list[int] = Field(default_factory=lambda: [4, 8, 16, 32], min_length=1, description="size: shared "
                                "values per layer tried by weight sharing")
    latency_repeats: int = Field(10, ge=1, le=1000, description="latency: timing effort per measurement")

    @field_validator("budget", mode="before")
    @classmethod
    def _budget(cls, v: object) -> str:
        text = str(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v
        if isinstance(text, str):
            parse_budget(text)
        return text  # type: ignore[return-value]

    @field_validator("clusters")
    @classmethod
    def _clusters(cls, v: list[int]) -> list[int]:
        if not all(2 <= k <= 256 for k in v):
            raise ValueError("every cluster count must be in 2 .. 256")
        return v

    @field_validator("sensitivity_ratios")
    @classmethod
    def _ratios(cls, v: list[float]) -> list[float]:
        if not all(0 < r < 1 for r in v):
            raise ValueError("every ratio must be in (0, 1)")
        return v

    @model_validator(mode="after")
    def _check(self) -> "AutoConfig":
        if self.objective == "macs" and self.quantize != ["none"]:
            self.quantize = ["none"]  # lower precision does not change the MACs: not worth a trial
        return self

    def limits(self) -> tuple[float | None, int | None]:
        return parse_budget(self.budget)


# The recipe keys an auto recipe shares with `distill run` recipes; the teacher is the model it starts from.
BASE_KEYS = ("name", "seed", "device", "channels_last", "threads", "data", "teacher")


def split_auto_recipe(raw: dict[str, Any], source: str) -> tuple[dict[str, Any], AutoConfig]:
    """An auto recipe -> (its plain-recipe part, the `auto:` section), each problem named."""
    problems = [f"{key}: not part of an auto recipe (a search writes its own steps); keys: "
                f"{', '.join(BASE_KEYS)}, auto" for key in raw if key not in (*BASE_KEYS, "auto")]
    if "auto" not in raw:
        problems.append("auto: required key is missing (e.g. `auto: {objective: latency, max_drop: 0.5, budget: 60m}`)")
    teacher = raw.get("teacher")
    if not isinstance(teacher, dict) or not teacher.get("checkpoint"):
        problems.append("teacher.checkpoint: the model the search starts from is missing (a model file, or a "
                        "foreign checkpoint with arch)")
    cfg = AutoConfig()
    try:
        cfg = AutoConfig.model_validate(raw.get("auto") or {})
    except ValidationError as e:
        problems += [f"auto.{'.'.join(map(str, err['loc']))}: {err['msg'].removeprefix('Value error, ')}"
                     for err in e.errors()]
    if problems:
        raise RecipeError(problems, source=source, hint="fix the keys above (`distill auto --help` shows an example)")
    return {k: v for k, v in raw.items() if k != "auto"}, cfg


def load_auto_recipe(path: Path, overrides: list[str]) -> tuple[dict[str, Any], AutoConfig]:
    """An auto recipe file (relative paths against its folder) plus ``--set`` overrides."""
    from distillcli.recipe import read_recipe

    return split_auto_recipe(read_recipe(path, overrides), str(path))
