"""Quantization: int8 (post-training static, dynamic, quantization-aware) or half-precision
weights. The result is a torch.export program saved as ``.pt2``; it runs on the CPU."""

from __future__ import annotations

import copy
from typing import Any

from distillcli.compress.export.program import cpu_copy
from distillcli.facts import ModelFacts, QuantizeFacts
from distillcli.modelfile.program import compile_default, ProgramModule
from distillcli.compress.quantization import calibrate, convert, half_program, prepare, resolve_skip
from distillcli.compress.quantization.layers import quantized_layers
from distillcli.compress.quantization.target import int8_plan
from distillcli.models.handle import ModelHandle
from distillcli.steps.base import StepContext, StepOutput, prepare as place
from distillcli.steps.options import QuantizeConfig
from distillcli.record import EpochRecord


def quantize(model: ModelHandle, ctx: StepContext, cfg: QuantizeConfig) -> StepOutput:
    """Quantize to int8 (static / dynamic / QAT) or half-precision weights, as a .pt2 program."""
    example = next(iter(ctx.data.train))[0][:2]
    facts: dict[str, Any] = {}
    curve: list[EpochRecord] = []
    if cfg.method in ("bf16", "fp16"):
        program, precision = half_program(model.module, cfg.method, example), cfg.method
    else:
        precision = "int8"
        if cfg.method == "qat":
            float_model = place(model.module, ctx).eval()
            prepared = prepare(copy.deepcopy(float_model), "qat", example.to(ctx.device), cfg.skip, cfg.target)
            objective = ctx.self_distillation(float_model if cfg.distill else None, cfg)
            curve = ctx.fit(prepared, objective, cfg.model_copy(update={"compile": False}), title="quantize[qat]")
        else:
            prepared = prepare(cpu_copy(model.module), cfg.method, example.to("cpu"), cfg.skip, cfg.target)
            if cfg.method == "static":
                facts["calibration_images"] = calibrate(prepared, ctx.data.train, cfg.calibration_batches)
        done = quantized_layers(prepared)
        weights = {n: m.weight.numel() for n, m in model.module.named_modules() if n in done}
        total = sum(p.numel() for p in model.module.parameters())
        facts.update(int8_layers=len(done), int8_weight_share=round(sum(weights.values()) / max(total, 1), 4),
                     skipped=resolve_skip(model.module, cfg.skip), **int8_plan(cfg.target).info())
        program = convert(prepared, example)
    compiled = compile_default(precision) if cfg.compile is None else cfg.compile
    info = QuantizeFacts(method=cfg.method, compiled=compiled, **facts)
    handle = ModelHandle(ProgramModule(program, compiled), model.arch, "pt2", precision,
                         ModelFacts.model_validate(info.model_dump(exclude={"step"})))
    return StepOutput(handle, curve, info)
