"""Quantization: int8 (post-training static, dynamic, quantization-aware) or half-precision
weights. The result is a torch.export program saved as ``.pt2``. int8 runs on the CPU; bf16 / fp16
run on the run's device (fp16 made on a GPU computes in float16, on the CPU in float32)."""

from __future__ import annotations

import copy
from itertools import islice
from typing import Any, Iterator

import torch
from torch import Tensor, nn

from distillcli.compress.export.program import cpu_copy
from distillcli.facts import ModelFacts, QuantizeFacts, is_int8
from distillcli.measure import evaluate
from distillcli.modelfile.program import compile_default, ProgramModule
from distillcli.compress.quantization import calibrate, computes_in, convert, half_program, prepare, resolve_skip
from distillcli.compress.quantization.control import Candidate, rank_layers, search
from distillcli.compress.quantization.layers import quantized_layers
from distillcli.compress.quantization.target import int8_plan
from distillcli.models.handle import ModelHandle
from distillcli.steps.base import StepContext, StepOutput, prepare as place
from distillcli.steps.options import QuantizeConfig
from distillcli.record import EpochRecord

CONTROL_BATCHES = 16  # max_drop without data.val_split: training batches that did not calibrate
RANK_BATCHES = 4  # calibration batches the layers' own int8 errors are measured on


def quantize(model: ModelHandle, ctx: StepContext, cfg: QuantizeConfig) -> StepOutput:
    """Quantize to int8 (static / dynamic / QAT) or half-precision weights, as a .pt2 program."""
    example = next(iter(ctx.data.train))[0][:2]
    facts: dict[str, Any] = {}
    curve: list[EpochRecord] = []
    if not is_int8(cfg.method):
        for_gpu = ctx.device.type == "cuda"
        program, precision = half_program(model.module, cfg.method, example, for_gpu), cfg.method
        facts["computes_in"] = str(computes_in(cfg.method, for_gpu)).removeprefix("torch.")
    else:
        precision = "int8"
        skipped = resolve_skip(model.module, cfg.skip)
        if cfg.method == "qat":
            float_model = place(model.module, ctx).eval()
            prepared = prepare(copy.deepcopy(float_model), "qat", example.to(ctx.device), cfg.skip, cfg.target)
            objective = ctx.self_distillation(float_model if cfg.distill else None, cfg)
            curve = ctx.fit(prepared, objective, cfg.model_copy(update={"compile": False}), title="quantize[qat]")
            done, program = quantized_layers(prepared), convert(prepared, example)
        elif cfg.max_drop is None:
            done, program = _post_training(model.module, ctx, cfg, example, skipped, facts)
        else:
            chosen, control = _controlled(model.module, ctx, cfg, example, skipped, facts)
            done, program = chosen.int8_layers, chosen.program
            skipped += control["fallback"]
            facts.update(control)
        weights = {n: m.weight.numel() for n, m in model.module.named_modules() if n in done}
        total = sum(p.numel() for p in model.module.parameters())
        facts.update(int8_layers=len(done), int8_weight_share=round(sum(weights.values()) / max(total, 1), 4),
                     skipped=skipped, **int8_plan(cfg.target).info())
    compiled = compile_default(precision) if cfg.compile is None else cfg.compile
    info = QuantizeFacts(method=cfg.method, compiled=compiled, **facts)
    handle = ModelHandle(ProgramModule(program, compiled), model.arch, "pt2", precision,
                         ModelFacts.model_validate(info.model_dump(exclude={"step"})))
    return StepOutput(handle, curve, info)


def _post_training(module: nn.Module, ctx: StepContext, cfg: QuantizeConfig, example: Tensor, skip: list[str],
                   facts: dict[str, Any]) -> tuple[set[str], torch.export.ExportedProgram]:
    """Static or dynamic int8 with ``skip`` in float: the int8 layers and the program. The training
    loader replays the same batches while its epoch stays, so every call calibrates alike."""
    prepared = prepare(cpu_copy(module), cfg.method, example.to("cpu"), skip, cfg.target)
    if cfg.method == "static":
        facts["calibration_images"] = calibrate(prepared, ctx.data.train, cfg.calibration_batches)
    return quantized_layers(prepared), convert(prepared, example)


class _OnCpu:
    """Batches of a loader (a slice of them), on the CPU, iterable again and again."""

    def __init__(self, loader: Any, start: int = 0, stop: int | None = None) -> None:
        self.loader, self.start, self.stop = loader, start, stop

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor, Tensor]]:
        for images, labels, index in islice(iter(self.loader), self.start, self.stop):
            yield images.cpu(), labels.cpu(), index.cpu()


def _control_images(ctx: StepContext, cfg: QuantizeConfig) -> tuple[_OnCpu, str]:
    """What max_drop is measured on, never the split final models are reported on: the share
    data.val_split holds out of the training data, else training batches that did not calibrate."""
    if ctx.data.select is not None:
        return _OnCpu(ctx.data.select), "held out by data.val_split"
    start = cfg.calibration_batches if cfg.method == "static" and len(ctx.data.train) > cfg.calibration_batches else 0
    where = "training images" + (" that did not calibrate" if start else "")
    return _OnCpu(ctx.data.train, start, start + CONTROL_BATCHES), where


def _controlled(module: nn.Module, ctx: StepContext, cfg: QuantizeConfig, example: Tensor, skip: list[str],
                facts: dict[str, Any]) -> tuple[Candidate, dict[str, Any]]:
    """int8 with the fewest layers kept in float that bring control top-1 within cfg.max_drop."""
    assert cfg.max_drop is not None
    control, where = _control_images(ctx, cfg)
    reference = evaluate(cpu_copy(module).eval(), control, ctx.data.num_classes)

    def make(extra: list[str]) -> Candidate:
        done, program = _post_training(module, ctx, cfg, example, skip + extra, facts)
        return Candidate(program, done, evaluate(ProgramModule(program), control, ctx.data.num_classes)["top1"])

    first = make([])
    ranked: list[str] = []
    if reference["top1"] - first.top1 > cfg.max_drop:
        ctx.progress.message(f"int8 control top-1 {first.top1:.2f}, float {reference['top1']:.2f}: "
                             "ranking the layers by their own int8 error")
        batches = [images for images, _, _ in _OnCpu(ctx.data.train, 0, RANK_BATCHES)]
        bits = 7 if int8_plan(cfg.target).reduce_range else 8
        ranked = [name for name, _ in rank_layers(cpu_copy(module), sorted(first.int8_layers), batches, bits,
                                                  dynamic=cfg.method == "dynamic")]
    result = search(make, ranked, reference["top1"], cfg.max_drop, first, ctx.progress.message)
    return result.chosen, {"max_drop": cfg.max_drop, "control": where, "control_images": reference["samples"],
                           "control_top1_float": round(reference["top1"], 3),
                           "control_top1": round(result.chosen.top1, 3), "fallback": result.fallback,
                           "control_trials": result.trials}
