"""The options of every step, as a recipe writes them under ``steps:``.

Pure pydantic: this module and what it imports load without torch, so that `distill validate`,
`distill schema` and `distill list` start fast. Each step's function lives in ``steps/<name>.py``
and is imported when the step first runs (see ``steps.registry``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, field_validator, model_validator

from distillcli.compress.choices import IMPORTANCES, ImportanceName, Reduce
from distillcli.facts import Method, is_int8
from distillcli.machine import TARGETS
from distillcli.modelfile.formats import exportable
from distillcli.losses.options import KDOptions, SelfDistillOptions
from distillcli.losses.specs import LossTerm, loss_problems, parse_loss
from distillcli.training.optim import OptimConfig


class StepConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: Literal["student", "teacher"] = Field("student", description="which model the step acts on")

    @property
    def int8_convs(self) -> bool:
        """The step makes its model's convolutions int8 (what prune's runs_in: auto looks ahead for)."""
        return False


class TrainConfig(StepConfig, OptimConfig):
    pass


class DistillConfig(StepConfig, OptimConfig, KDOptions):
    loss: list[LossTerm] = Field(default_factory=lambda: [LossTerm(kd={})],
                                 description="distillation method: a name (kd, dkd, dist, ce) or a list of weighted "
                                             "terms, e.g. [kd, {fitnet: {teacher_layer: net.layer3, "
                                             "student_layer: net.layer3}}] (a bare name: that term's defaults)")

    @field_validator("loss", mode="before")
    @classmethod
    def _named(cls, value: Any) -> Any:
        return parse_loss(value)

    @model_validator(mode="after")
    def _usable(self) -> "DistillConfig":
        fields = type(self).model_fields  # a resolved recipe lists every default: only other values count as set
        given = {k for k in self.model_fields_set if getattr(self, k) != fields[k].get_default(call_default_factory=True)}
        problems = loss_problems(self.loss, self.alpha, given)
        if problems:
            raise ValueError("; ".join(f"loss: {p}" for p in problems))
        return self


class EvaluateConfig(StepConfig):
    pass


class FinetuneConfig(OptimConfig, SelfDistillOptions):
    epochs: int = Field(0, ge=0, le=100_000, description="fine-tune epochs after pruning (after each round "
                                                         "when iterative); 0: no fine-tune")
    lr: float = Field(0.01, gt=0, le=1e12, description="peak learning rate (lower than from-scratch training)")


QuantizeTarget = Literal[("auto", *TARGETS)]  # type: ignore[valid-type]
PruneTarget = Literal[("auto", *TARGETS, "cuda")]  # type: ignore[valid-type]


class PruneConfig(StepConfig):
    method: Literal["channel", "unstructured"] = Field(
        "channel", description="channel: remove whole channels/filters (smaller and faster); "
                               "unstructured: zero single weights (sparser, not faster on dense hardware)")
    sparsity: float | None = Field(None, gt=0, lt=1, description="fraction of the weights removed: channel: of all "
                                   "parameters (the channel ratio is searched); unstructured: of conv/linear weights")
    channel_ratio: float | None = Field(None, gt=0, lt=1, description="channel: fraction of every layer's channels "
                                        "removed (removes about 1 - (1 - r)^2 of the weights)")
    target_mac_reduction: float | None = Field(None, gt=1, le=1000, description="channel: prune the model to "
                                               "this many times fewer MACs (the ratio is searched; with rounded "
                                               "channel counts, the plan nearest it, on either side)")
    importance: ImportanceName = Field("l1", description="channel score (`distill list importances`): weight norms, "
                                                         "BatchNorm scales or gradients")
    scope: Literal["layer", "global"] = Field("layer", description="layer: the same ratio in every layer; "
                                                                   "global: rank all layers together")
    max_layer_ratio: float = Field(0.9, gt=0, lt=1, description="global scope / ratio search: at most this "
                                                                "fraction of any layer is removed")
    overrides: dict[str, float] = Field(default_factory=dict, max_length=10_000, description="per-layer ratios "
                                        "by module-name wildcard, e.g. {'net.layer3.*': 0.3}; 0 keeps the layer whole")
    ignore: list[str] = Field(default_factory=list, max_length=10_000, description="layers (wildcards) never "
                              "pruned; 'stem' is the first convolution; the classifier's outputs are always kept")
    round_to: Annotated[int, Field(ge=1, le=4096)] | Literal["auto"] | None = Field(
        "auto", description="channel: keep channel counts a multiple of this (halved, down to 8, for layers narrower "
                            "than eight times it); auto: the fast multiple of the machine that prunes, or of `target` "
                            "(CPU: 16 with AVX-512, "
                            "8 with AVX2, measured per ISA; CUDA and others: 8; int8 models: see runs_in); null or "
                            "1: no rounding")
    target: PruneTarget = Field("auto", description="channel, round_to auto: the machine the model will run on "
                                "(auto: the one that prunes): avx2 8; avx512, vnni, amx 16; arm64, cuda 8")
    runs_in: Literal["auto", "float", "int8"] = Field(
        "auto", description="channel, round_to auto: the precision the pruned model will run in; int8 convolutions want "
                            "their own multiples (AMX: 16, not halved to 8 for thin layers: 8 channels run as long as 16 "
                            "there). auto: int8 when a later step of the recipe quantizes this model to int8 (static, qat)")
    schedule: Literal["oneshot", "iterative", "gradual"] = Field(
        "oneshot", description="oneshot; iterative: `iterations` prune + fine-tune rounds; gradual (unstructured): "
                               "AGP cubic ramp during the fine-tune")
    iterations: PositiveInt = Field(3, le=100, description="iterative: number of prune + fine-tune rounds")
    frequency: PositiveInt = Field(100, le=10_000_000, description="gradual: optimiser steps between sparsity updates")
    initial_sparsity: float = Field(0.0, ge=0, lt=1, description="gradual: sparsity at the start of the ramp")
    ramp: float = Field(0.75, gt=0, le=1, description="gradual: fraction of the fine-tune over which sparsity rises")
    importance_batches: PositiveInt = Field(8, le=100_000, description="taylor: training batches whose gradients "
                                                                       "score channels")
    recalibrate_bn: int = Field(20, ge=0, le=100_000, description="training batches used to re-estimate BatchNorm "
                                                                   "statistics after each pruning round (0: keep the "
                                                                   "old ones)")
    latency: bool = Field(True, description="measure latency before and after (for the speedup in the report)")
    finetune: FinetuneConfig = Field(default_factory=FinetuneConfig)

    @field_validator("round_to", mode="before")
    @classmethod
    def _round_to(cls, value: Any) -> Any:
        """One message for every bad value (pydantic would list one per member of the union)."""
        if value is None or value == "auto":
            return value
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 4096:
            return value
        raise ValueError(f"must be a whole number from 1 to 4096, auto or null (got {value!r})")

    @model_validator(mode="after")
    def _check(self) -> "PruneConfig":
        if [self.sparsity, self.channel_ratio, self.target_mac_reduction].count(None) != 2:
            raise ValueError("give exactly one of sparsity (e.g. 0.5), channel_ratio (e.g. 0.3) and "
                             "target_mac_reduction (e.g. 2.0)")
        bad = {k: v for k, v in self.overrides.items() if not 0 <= v < 1}
        if bad:
            raise ValueError(f"override ratios must be in [0, 1): {bad}")
        if self.method == "unstructured":
            if self.target_mac_reduction is not None or self.channel_ratio is not None:
                raise ValueError("unstructured pruning zeroes single weights; give sparsity, or use method: channel")
            if not IMPORTANCES.get(self.importance).per_weight:
                raise ValueError("unstructured pruning ranks single weights by magnitude; importance must be one of "
                                 + ", ".join(e.name for e in IMPORTANCES.entries() if e.per_weight))
            if isinstance(self.round_to, int):
                raise ValueError("round_to applies to channel pruning only")
        for name, what in (("target", "for another machine"), ("runs_in", "for a precision")):
            if getattr(self, name) != "auto" and (self.method != "channel" or self.round_to != "auto"):
                raise ValueError(f"{name} chooses round_to: auto's channel multiple {what}: it applies to channel "
                                 f"pruning with round_to: auto (remove round_to, or {name})")
        if self.schedule == "gradual":
            if self.method != "unstructured":
                raise ValueError("schedule gradual is for method: unstructured; use schedule: iterative for channels")
            if self.finetune.epochs == 0:
                raise ValueError("schedule gradual prunes during the fine-tune: set finetune.epochs >= 1")
            if self.sparsity is not None and self.initial_sparsity >= self.sparsity:
                raise ValueError("initial_sparsity must be below sparsity")
        return self


class ShareConfig(StepConfig, OptimConfig, SelfDistillOptions):
    clusters: int = Field(16, ge=2, le=256, description="shared values per Conv2d layer (16: 4-bit codes); "
                                                        "a pruned layer's zero is one of them")
    linear_clusters: int | None = Field(None, ge=2, le=256, description="shared values per Linear layer "
                                                                        "(default: clusters)")
    skip: list[str] = Field(default_factory=list, max_length=10_000, description="layers (wildcards on module "
                                                                                  "names) left unshared")
    iterations: int = Field(30, ge=1, le=10_000, description="k-means iterations at most")
    epochs: int = Field(1, ge=0, le=100_000, description="centroid fine-tune epochs (0: cluster only)")
    lr: float = Field(0.0001, gt=0, le=1e12, description="peak learning rate of the centroid fine-tune")
    centroid_grad: Reduce = Field("sum", description="sum: a centroid's gradient is the sum over its weights "
                                                     "(the paper); mean: their average (steps independent of "
                                                     "cluster size)")


# `compile` is the program's here (the QAT loop itself runs eager), so it is not a training option
_TRAINING = (set(OptimConfig.model_fields) - {"compile"}) | set(SelfDistillOptions.model_fields)


class QuantizeConfig(StepConfig, OptimConfig, SelfDistillOptions):
    method: Method = Field("static", description=(
        "static: int8 with activation ranges calibrated on training images (the fast path for CNNs); "
        "dynamic: int8 Linear layers, activation ranges per batch (Linear-heavy models); qat: fake-quantized "
        "fine-tune distilled from the float model, then int8; bf16: bfloat16 weights and compute; "
        "fp16: float16 weights, float32 compute"))
    calibration_batches: PositiveInt = Field(16, le=100_000, description="static: training batches that calibrate "
                                                                         "the ranges")
    skip: list[str] = Field(default_factory=list, max_length=10_000, description="int8: layers (wildcards on "
                            "module names, e.g. 'net.conv1' or 'net.layer3.*') kept in float")
    max_drop: float | None = Field(None, ge=0, le=100, description=(
        "static, dynamic: keep in float the fewest layers (those int8 hurts most) that bring top-1 within this "
        "many points of the float model, measured on the data.val_split share (else training batches that did "
        "not calibrate), never on the test split"))
    compile: bool | None = Field(None, description="compile the program (torch.compile) before it is measured; "
                                                   "default: for int8 only, which is slow uncompiled")
    target: QuantizeTarget = Field("auto", description=(
        "int8: the machine that will run the model (auto: this one). avx2, avx512 (no VNNI): 7-bit activations "
        "(reduce_range), whose products cannot saturate; vnni, amx: full 8-bit; arm64: torchao's ARM quantizer"))
    # QAT: the OptimConfig fields plus distillation from the float model (alpha 0: labels only)
    lr: float = Field(0.001, gt=0, le=1e12, description="qat: peak learning rate (a fine-tune: lower than training)")

    @property
    def int8_convs(self) -> bool:
        return self.method in ("static", "qat")  # dynamic int8 leaves convolutions in float

    @model_validator(mode="after")
    def _only_what_applies(self) -> "QuantizeConfig":
        fields = type(self).model_fields
        # set to something other than its default (a resolved recipe lists every default)
        given = {k for k in self.model_fields_set if getattr(self, k) != fields[k].get_default(call_default_factory=True)}
        if self.method != "qat" and given & _TRAINING:
            raise ValueError(f"{', '.join(sorted(given & _TRAINING))}: training options apply to method qat only")
        if self.method != "static" and "calibration_batches" in given:
            raise ValueError("calibration_batches applies to method static only")
        if not is_int8(self.method) and self.skip:
            raise ValueError("skip applies to the int8 methods only")
        if self.method not in ("static", "dynamic") and self.max_drop is not None:
            raise ValueError("max_drop applies to methods static and dynamic (post-training int8) only")
        return self


ExportFormat = Literal[tuple(exportable())]  # type: ignore[valid-type]


class ExportConfig(StepConfig):
    format: ExportFormat = Field("onnx", description="the file format (`distill list formats`): onnx runs in "
                                                     "onnxruntime; pt2 is a torch.export program; aoti an AOTInductor "
                                                     "package (machine code, loads only with --allow-native)")
    int8: bool = Field(False, description="onnx: quantize to int8 with onnxruntime (static, QDQ, per channel), "
                                          "calibrated on training batches")
    calibration_batches: PositiveInt = Field(16, le=100_000, description="int8: training batches that calibrate "
                                                                         "the ranges")
    name: str | None = Field(None, description="file name in <run>/exports/ (default: <model>-<precision>.<format>)")
    evaluate: bool = Field(True, description="measure the exported file's accuracy and latency under its runtime")

    @field_validator("name")
    @classmethod
    def _plain_file_name(cls, name: str | None) -> str | None:
        """The file goes into <run>/exports/: a name that is a path could write anywhere."""
        if name is None:
            return name
        if name in ("", ".", "..") or any(c in name for c in "/\\:") or not name.isprintable():
            raise ValueError("must be a plain file name (no folders, '..', ':' or control characters), "
                             "e.g. student.onnx")
        if len(name.encode("utf-8", "surrogatepass")) > 255:
            raise ValueError("must be at most 255 bytes long")
        return name

    @model_validator(mode="after")
    def _check(self) -> "ExportConfig":
        if self.int8 and self.format != "onnx":
            raise ValueError("int8 applies to format onnx; for an int8 .pt2 add a quantize step before export")
        return self


class SensitivityConfig(StepConfig):
    ratios: list[float] = Field(default_factory=lambda: [0.25, 0.5, 0.75], min_length=1, max_length=20,
                                description="fractions of a layer's channels to remove, each in (0, 1)")
    importance: ImportanceName = Field("l1", description="channel score (`distill list importances`)")
    ignore: list[str] = Field(default_factory=list, description="layers (wildcards) to skip; 'stem' = first conv")
    max_drop: float = Field(1.0, ge=-100, le=100, description="accuracy drop (percentage points) allowed per layer "
                                                            "in the suggested overrides")
    importance_batches: PositiveInt = Field(8, le=10_000, description="taylor: batches whose gradients score channels")

    @model_validator(mode="before")
    @classmethod
    def _renamed(cls, raw: Any) -> Any:
        if isinstance(raw, dict) and "budget" in raw:
            raise ValueError(f"budget is now max_drop (accuracy budgets are max_drop everywhere): write "
                             f"max_drop: {raw['budget']}")
        return raw

    @field_validator("ratios")
    @classmethod
    def _fractions(cls, v: list[float]) -> list[float]:
        if not all(0 < r < 1 for r in v):
            raise ValueError("every ratio must be in (0, 1), e.g. [0.25, 0.5, 0.75]")
        return v
