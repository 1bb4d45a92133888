"""Quantization: int8 (post-training static, dynamic, quantization-aware) or half-precision
weights. The result is a torch.export program saved as ``.pt2``; it runs on the CPU."""

from __future__ import annotations

import copy
from typing import Any, Literal

from pydantic import Field, PositiveInt, model_validator

from distillcli.compress.export.program import cpu_copy
from distillcli.modelfile.program import compile_default, ProgramModule
from distillcli.compress.quantization import calibrate, convert, half_program, prepare, resolve_skip
from distillcli.compress.quantization.layers import quantized_layers
from distillcli.losses import KDOptions, make_objective
from distillcli.models.handle import ModelHandle
from distillcli.steps.base import StepConfig, StepContext, StepOutput, prepare as place, require_eager, step
from distillcli.record import EpochRecord
from distillcli.training.optim import OptimConfig

Method = Literal["static", "dynamic", "qat", "bf16", "fp16"]
# `compile` is the program's here (the QAT loop itself runs eager), so it is not a training option
_TRAINING = (set(OptimConfig.model_fields) - {"compile"}) | set(KDOptions.model_fields)


class QuantizeConfig(StepConfig, OptimConfig, KDOptions):
    method: Method = Field("static", description=(
        "static: int8 with activation ranges calibrated on training images (the fast path for CNNs); "
        "dynamic: int8 Linear layers, activation ranges per batch (Linear-heavy models); qat: fake-quantized "
        "fine-tune distilled from the float model, then int8; bf16: bfloat16 weights and compute; "
        "fp16: float16 weights, float32 compute"))
    calibration_batches: PositiveInt = Field(16, le=100_000, description="static: training batches that calibrate "
                                                                         "the ranges")
    skip: list[str] = Field(default_factory=list, max_length=10_000, description="int8: layers (wildcards on "
                            "module names, e.g. 'net.conv1' or 'net.layer3.*') kept in float")
    compile: bool | None = Field(None, description="compile the program (torch.compile) before it is measured; "
                                                   "default: for int8 only, which is slow uncompiled")
    # QAT: the OptimConfig fields plus distillation from the float model (alpha 0: labels only)
    lr: float = Field(0.001, gt=0, le=1e12, description="qat: peak learning rate (a fine-tune: lower than training)")

    @model_validator(mode="after")
    def _only_what_applies(self) -> "QuantizeConfig":
        fields = type(self).model_fields
        # set to something other than its default (a resolved recipe lists every default)
        given = {k for k in self.model_fields_set if getattr(self, k) != fields[k].get_default(call_default_factory=True)}
        if self.method != "qat" and given & _TRAINING:
            raise ValueError(f"{', '.join(sorted(given & _TRAINING))}: training options apply to method qat only")
        if self.method != "static" and "calibration_batches" in given:
            raise ValueError("calibration_batches applies to method static only")
        if self.method in ("bf16", "fp16") and self.skip:
            raise ValueError("skip applies to the int8 methods only")
        return self


@step("quantize", QuantizeConfig)
def quantize(model: ModelHandle, ctx: StepContext, cfg: QuantizeConfig) -> StepOutput:
    """Quantize to int8 (static / dynamic / QAT) or half-precision weights, as a .pt2 program."""
    require_eager(model, "quantize")
    example = next(iter(ctx.data.train))[0][:2]
    info: dict[str, Any] = {"method": cfg.method}
    curve: list[EpochRecord] = []
    if cfg.method in ("bf16", "fp16"):
        program, kind = half_program(model.module, cfg.method, example), cfg.method
    else:
        kind = "int8"
        if cfg.method == "qat":
            float_model = place(model.module, ctx).eval()
            prepared = prepare(copy.deepcopy(float_model), "qat", example.to(ctx.device), cfg.skip)
            objective = make_objective("kd" if cfg.alpha > 0 else "ce", float_model, cfg, cfg.label_smoothing)
            curve = ctx.fit(prepared, objective, cfg.model_copy(update={"compile": False}), title="quantize[qat]")
        else:
            prepared = prepare(cpu_copy(model.module), cfg.method, example.to("cpu"), cfg.skip)
            if cfg.method == "static":
                info["calibration_images"] = calibrate(prepared, ctx.data.train, cfg.calibration_batches)
        done = quantized_layers(prepared)
        weights = {n: m.weight.numel() for n, m in model.module.named_modules() if n in done}
        total = sum(p.numel() for p in model.module.parameters())
        info.update(int8_layers=len(done), int8_weight_share=round(sum(weights.values()) / max(total, 1), 4),
                    skipped=resolve_skip(model.module, cfg.skip))
        program = convert(prepared, example)
    compiled = compile_default(kind) if cfg.compile is None else cfg.compile
    info["compiled"] = compiled
    return StepOutput(ModelHandle(ProgramModule(program, compiled), model.arch, kind, info), curve, info)
