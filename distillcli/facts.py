"""What steps record, typed: each step's facts (``StepRecord.info`` in metrics.json, one model per
step kind, told apart by ``step``) and the facts a model carries into its file (``ModelHandle.info``).
Torch-free: the run record and `distill schema --metrics` load them without torch."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union, get_args

from pydantic import BaseModel, ConfigDict, Field

from distillcli.machine import Target

HalfKind = Literal["bf16", "fp16"]  # half-precision weights; the other quantize methods make int8
Autocast = Literal["fp32", HalfKind]  # the precision a training loop computes in
Precision = Literal["fp32", HalfKind, "int8"]  # what a model's weights are stored in
Method = Literal["static", "dynamic", "qat", HalfKind]  # how the quantize step stores the model
HALF_METHODS: tuple[HalfKind, ...] = get_args(HalfKind)


def is_int8(method: str) -> bool:
    """An int8 program: it runs on the CPU (a half-precision one moves to a GPU)."""
    return method in get_args(Method) and method not in HALF_METHODS


class _Facts(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PruneFacts(_Facts):
    step: Literal["prune"] = "prune"
    method: Literal["channel", "unstructured"]
    schedule: Literal["oneshot", "iterative", "gradual"]
    scope: Literal["layer", "global"]
    sparsity: float = Field(description="channel: share of all the weights removed; unstructured: of the "
                                        "conv/linear weights")
    params_before: int
    params_after: int
    macs_before: int | None = Field(description="None: the MACs could not be counted")
    macs_after: int | None
    mac_reduction: float | None = Field(None, description="macs_before / macs_after")
    latency_ms_before: dict[str, float] = Field(default_factory=dict, description="best median ms per batch size, "
                                                "timed in alternation with the pruned model (empty: latency off)")
    latency_ms_after: dict[str, float] = Field(default_factory=dict)
    speedup_b1: float | None = Field(None, description="latency before / after at batch 1")
    speedup_b64: float | None = Field(None, description="latency before / after at batch 64")
    importance: str | None = Field(None, description="channel: the channel score")
    round_to: int | None = Field(None, description="channel: channel counts kept a multiple of this (None: any)")
    round_to_for: str | None = Field(None, description="channel, round_to auto: the machine (and precision) whose "
                                     "fast multiple it is")
    round_to_narrowest: int | None = Field(None, description="channel: the narrowest multiple round_to may be "
                                           "halved to for thin layers")
    ratio: float | None = Field(None, description="channel: the channel ratio of the last round")
    ratios: list[float] = Field(default_factory=list, description="channel: the ratio of each round")
    target_mac_reduction: float | None = Field(None, description="channel: the MAC reduction asked for")
    other_plan_reduction: float | None = Field(None, description="channel, MAC or sparsity target: what the plan on "
                                               "the other side of the target gives (times fewer MACs, or parameters "
                                               "for sparsity): rounding moves counts in steps, the nearer is taken")
    channels_removed: float | None = Field(None, description="channel: share of the prunable channels removed")
    channels: dict[str, tuple[int, int]] = Field(default_factory=dict, description="channel: per group, its "
                                                 "channels before the first round and after the last")
    top1_before_finetune: float | None = Field(None, description="channel: top-1 of the last round before its "
                                               "fine-tune")
    sparse_bytes: int | None = Field(None, description="unstructured: the weights stored sparse")
    dense_bytes: int | None = Field(None, description="unstructured: the weights stored dense")
    note: str | None = Field(None, description="unstructured: why the model is not faster")

    def speedups(self) -> dict[str, float]:
        """Measured speed-up per batch size."""
        return {b: v for b, v in (("1", self.speedup_b1), ("64", self.speedup_b64)) if v is not None}


class _Quantization(_Facts):
    """Fields a quantized model records, in its step's facts and in its file."""

    method: Method | None = None
    calibration_images: int | None = Field(None, description="static: images that calibrated the int8 ranges")
    int8_layers: int | None = None
    int8_weight_share: float | None = Field(None, description="share of the weights in int8 layers")
    skipped: list[str] | None = Field(None, description="int8: layers kept in float")
    target: Target | None = Field(None, description="int8: the machine it is tuned for")
    target_machine: str | None = None
    reduce_range: bool | None = Field(None, description="int8: 7-bit activations (CPUs without VNNI)")
    quantizer: Literal["x86_inductor", "arm_inductor"] | None = None
    compiled: bool | None = Field(None, description="measured as a compiled program")
    computes_in: Literal["bfloat16", "float16", "float32"] | None = Field(
        None, description="bf16 / fp16: the dtype its layers compute in (fp16 made for a GPU: float16; for the CPU: "
        "float32, from float16 weights)")
    max_drop: float | None = Field(None, description="int8: the top-1 drop (points) on the control images that "
                                   "the layers kept in float were chosen for")
    control: str | None = Field(None, description="max_drop: the images it was measured on")
    control_images: int | None = None
    control_top1_float: float | None = Field(None, description="max_drop: the float model's top-1 on them")
    control_top1: float | None = Field(None, description="max_drop: the int8 model's top-1 on them (uncompiled)")
    fallback: list[str] | None = Field(None, description="max_drop: the layers the search kept in float (also in "
                                       "skipped), worst int8 error first")
    control_trials: list[tuple[int, float]] | None = Field(None, description="max_drop: (layers in float, "
                                                           "control top-1) of each quantization tried")


class QuantizeFacts(_Quantization):
    step: Literal["quantize"] = "quantize"
    method: Method
    compiled: bool


class ExportFacts(_Facts):
    step: Literal["export"] = "export"
    file: str = Field(description="relative to the run directory when inside it")
    format: str
    precision: Precision
    file_bytes: int
    max_abs_diff: float = Field(description="largest |logit difference| from the model on the check images")
    max_abs_logit: float
    top1_agreement: float = Field(description="% of the check images given the model's class")
    min_cosine: float = Field(description="lowest per-image cosine similarity of the logits")
    images: int = Field(description="check images")
    top1: float | None = Field(None, description="evaluate: top-1 of the file under its runtime")
    ms_b1: float | None = Field(None, description="evaluate: its latency at batch 1")
    ms_b64: float | None = None


class LayerStorage(_Facts):
    """One shared layer's bits at each Deep Compression stage."""

    name: str
    weights: int
    nonzero: int
    entries: int
    clusters: int
    index_bits: int
    fp32_bits: int
    pruned_bits: int
    shared_bits: int
    huffman_bits: int


class ShareFacts(_Facts):
    step: Literal["share"] = "share"
    clusters: int
    linear_clusters: int
    shared_layers: int
    fp32_bytes: int
    pruned_bytes: int = Field(description="sparse, fp32 values")
    pruned_ratio: float
    shared_bytes: int = Field(description="codes + codebook")
    shared_ratio: float
    huffman_bytes: int
    huffman_ratio: float
    shared_weight_sparsity: float
    size_layers: list[LayerStorage]


class LayerSensitivity(_Facts):
    layer: str = Field(description="the group's first layer")
    ratio: float
    channels: int
    kept: int
    top1: float
    drop: float = Field(description="percentage points below the unpruned model")
    mac_reduction: float = Field(description="of the whole model")


class SensitivityFacts(_Facts):
    step: Literal["sensitivity"] = "sensitivity"
    baseline_top1: float
    max_drop: float = Field(description="accuracy drop (points) allowed per layer in the suggestions")
    suggested_overrides: dict[str, float]
    rows: list[LayerSensitivity]
    csv: str
    plot: str


StepFacts = Annotated[Union[PruneFacts, QuantizeFacts, ExportFacts, ShareFacts, SensitivityFacts],
                      Field(discriminator="step")]
_BY_KIND: dict[str, type[BaseModel]] = {m.model_fields["step"].default: m for m in get_args(get_args(StepFacts)[0])}


_RENAMED_IN_V4 = {"budget": "max_drop"}  # sensitivity: accuracy budgets are max_drop everywhere


def facts_from_v3(kind: str, info: dict[str, Any]) -> dict[str, Any] | None:
    """A version-3 step's ``info`` as its kind's facts; keys no longer recorded are dropped."""
    facts = _BY_KIND.get(kind)
    if facts is None or not info:
        return None
    info = {_RENAMED_IN_V4.get(k, k): v for k, v in info.items()}
    return {**{k: v for k, v in info.items() if k in facts.model_fields}, "step": kind}


# ---------------------------------------------------------------- model files
class _FileFacts(BaseModel):
    model_config = ConfigDict(extra="ignore")  # a file from another version may record more


class PruningSummary(_FileFacts):
    method: Literal["channel", "unstructured"]
    sparsity: float
    mac_reduction: float | None = None


class SharingSummary(_FileFacts):
    clusters: int
    linear_clusters: int
    shared_layers: int


class ModelFacts(_Quantization):
    """What a model carries into its file's ``info``: how it was pruned, shared or quantized."""

    model_config = ConfigDict(extra="ignore")
    pruning: PruningSummary | None = None
    shared: SharingSummary | None = None
    input_layout: Literal["contiguous", "channels_last"] | None = Field(
        None, description="an .aoti package: the memory layout its compiled code reads")
