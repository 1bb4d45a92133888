"""Commands on a saved model file. Each is a one-step recipe run by the one engine
(engine/file_recipe.py), so it measures exactly as the same step inside a recipe."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Optional

import typer

from distillcli.cli.app import app
from distillcli.cli.options import (DataOpt, DataRootOpt, DeviceOpt, ForceOpt, JsonOpt, QuietOpt, SubsetOpt, ThreadsOpt,
                                    TrustOpt, ValFromOpt, ValSplitOpt, guarded, progress_for, refuse_overwrite,
                                    step_options)
from distillcli.cli.step_flags import step_flags
from distillcli.facts import ExportFacts, PruneFacts, QuantizeFacts
from distillcli.output import Output, measures_table
from distillcli.steps.options import ExportConfig, PruneConfig, QuantizeConfig


def _before_after(run: Any) -> list[tuple[str, dict[str, Any]]]:
    rows = [("before", run.before.model_dump())] if run.before is not None else []
    return rows + [("after", run.after.model_dump())]


@app.command("eval")
@guarded
def eval_(model: Path = typer.Argument(..., metavar="MODEL", help="a model file written by distill (.pt, .pt2, .onnx, "
                                       ".aoti)"),
          data: Optional[str] = DataOpt, data_root: Optional[str] = DataRootOpt, device: str = DeviceOpt,
          batch_size: Optional[int] = typer.Option(None, "--batch-size", min=1, max=65536, help="images per forward "
                                                   "pass of the evaluation", show_default="the file's, else 256"),
          subset: Optional[int] = SubsetOpt, threads: Optional[int] = ThreadsOpt,
          no_latency: bool = typer.Option(False, "--no-latency", metavar="", help="skip the latency measurement"),
          min_top1: Optional[float] = typer.Option(None, "--min-top1", min=0, max=100, help="CI gate: exit 3 when "
                                                   "top-1 (%) is below this"),
          allow_native: bool = typer.Option(False, "--allow-native", metavar="", help="load an .aoti package (it runs the "
                                            "machine code inside the file: only files you built or trust)"),
          quiet: bool = QuietOpt, as_json: bool = JsonOpt, trust_code: bool = TrustOpt) -> None:
    """Evaluate a saved model: accuracy, size, MACs and latency, in a fresh process.

    Example: distill eval runs/quickstart-*/models/student.pt --data-root data/ --min-top1 90
    """
    from distillcli import api
    from distillcli.errors import GateFailed
    from distillcli.modelfile.native import ALLOW_ENV
    from distillcli.report.numbers import device_note

    if allow_native:
        os.environ[ALLOW_ENV] = "1"
    run = api.evaluate(model, progress=progress_for(quiet, True), trust_code=trust_code, data=data, data_root=data_root,
                      device=device, latency=not no_latency, threads=threads, eval_batch_size=batch_size,
                      val_subset=subset, note_machine=True)
    if (elsewhere := device_note(run.record)) is not None:
        sys.stderr.write(f"note: {elsewhere}\n")
    name = run.record.data.name
    result = {"file": str(model), "format": run.model.format, "precision": run.model.precision,
              "arch": run.model.arch.name, "data": name,
              "data_root": data_root, "measures": run.after.model_dump()}
    top1 = run.after.top1 or 0.0
    if min_top1 is not None:
        result["gate"] = {"min_top1": min_top1, "top1": top1, "passed": top1 >= min_top1}
        if top1 < min_top1:
            error = GateFailed(f"{model}: top-1 {top1:.2f} % is below --min-top1 {min_top1:g}",
                               f"measured on {run.after.samples} {name} images")
            error.details = {"result": result}  # type: ignore[attr-defined]
            raise error
    Output(as_json).result(result, measures_table(f"{model} on {name}", [(model.name, result["measures"])]))


def _prune_summary(info: PruneFacts) -> str:
    from distillcli.report.markdown import human_bytes

    if info.method == "unstructured":
        return (f"sparsity {100 * info.sparsity:.1f} % of the conv/linear weights; stored sparse "
                f"{human_bytes(info.sparse_bytes or 0)} instead of {human_bytes(info.dense_bytes or 0)}\n"
                f"note: {info.note}")
    text = (f"weights removed {100 * info.sparsity:.1f} %, channels removed {100 * (info.channels_removed or 0):.1f} % "
            f"(ratio {info.ratio or 0:.3f}); MACs {info.mac_reduction or 0:.2f}x fewer, params "
            f"{info.params_before / info.params_after:.2f}x fewer")
    speed = [f"b{b} {v:.2f}x" for b, v in info.speedups().items()]
    if speed and info.mac_reduction:
        text += f"; measured speedup {', '.join(speed)} (MAC reduction {info.mac_reduction:.2f}x)"
    if info.other_plan_reduction and info.target_mac_reduction:
        text += (f"; {info.target_mac_reduction:g}x asked, the nearest plan taken: rounded channel counts give "
                 f"{info.other_plan_reduction:.2f}x on the other side of it")
    return text


@app.command()
@guarded
@step_flags(PruneConfig, "sparsity", "channel_ratio", "target_mac_reduction", "method", "importance", "scope",
            "round_to", "target", "runs_in", "ignore", "schedule", "iterations", "finetune.epochs", lr="finetune.lr",
            distill="finetune.distill")
def prune(model: Path = typer.Argument(..., metavar="MODEL", help="a model file written by distill (.pt)"),
          options: dict[str, Any] = ...,
          out: Optional[Path] = typer.Option(None, "--out", help="output model file", show_default="MODEL-pruned.pt"),
          force: bool = ForceOpt, data: Optional[str] = DataOpt, data_root: Optional[str] = DataRootOpt,
          subset: Optional[int] = SubsetOpt, device: str = DeviceOpt, threads: Optional[int] = ThreadsOpt,
          quiet: bool = QuietOpt, as_json: bool = JsonOpt, trust_code: bool = TrustOpt) -> None:
    """Prune a saved model: remove channels (smaller, faster) or zero weights; prints before/after.

    Example: distill prune runs/x/models/student.pt --target-mac-reduction 2 --finetune-epochs 1 --data-root data/
    """
    from distillcli import api

    cfg = step_options(PruneConfig, "prune", **options)
    target = out or model.with_name(f"{model.stem}-pruned.pt")
    refuse_overwrite(target, force)
    run = api.prune(model, cfg, progress=progress_for(quiet, as_json), out=target, trust_code=trust_code, data=data, data_root=data_root,
                      device=device, threads=threads, val_subset=subset)
    o = Output(as_json, quiet)
    step, info = run.record.steps[-1], run.info
    assert isinstance(info, PruneFacts)
    o.result({"source": str(model), "output": str(run.output), "before": run.before.model_dump() if run.before else None,
              "after": run.after.model_dump(), "info": info.model_dump(mode="json"),
              "curve": [r.model_dump() for r in step.curve]},
             measures_table(f"prune {model.name} ({cfg.method})", _before_after(run)))
    hint = _int8_rounding_hint(cfg, info)
    o.info(f"{_prune_summary(info)}\nwritten: {run.output}\nnext: distill eval {run.output}" +
           (f"\n{hint}" if hint else ""))
    if (cfg.finetune.epochs == 0 and run.before is not None and run.before.top1 is not None
            and run.after.top1 is not None):
        drop = run.before.top1 - run.after.top1
        if drop > 0.5:
            sys.stderr.write(f"warning: top-1 fell {drop:.1f} points ({run.before.top1:.2f} -> {run.after.top1:.2f} %) "
                             "without fine-tuning; add --finetune-epochs N (e.g. 5) to recover it\n")


def _int8_rounding_hint(cfg: PruneConfig, info: PruneFacts) -> str | None:
    """A standalone prune cannot see a later quantize: say so where int8 would round otherwise."""
    import torch

    from distillcli.runtime import auto_round_to

    if info.method != "channel" or cfg.round_to != "auto" or cfg.runs_in != "auto":
        return None
    int8 = auto_round_to(torch.device("cpu"), cfg.target, int8=True)
    if (int8.multiple, int8.narrowest) == (info.round_to, info.round_to_narrowest):
        return None
    thin = "" if int8.narrowest == int8.multiple else f", {int8.narrowest} in thin layers"
    return (f"note: rounded for float convolutions; for a file you will quantize to int8, prune with --runs-in int8 "
            f"({int8.machine}: channel counts in multiples of {int8.multiple}{thin})")


def _quantize_summary(info: QuantizeFacts, before: dict[str, Any], after: dict[str, Any]) -> str:
    from distillcli.report.markdown import human_bytes
    from distillcli.report.numbers import size_ratio

    text = f"method {info.method}"
    if info.int8_layers is not None:
        text += f": {info.int8_layers} int8 layers ({100 * (info.int8_weight_share or 0):.1f} % of the weights)"
        if info.skipped:
            text += f", kept in float: {', '.join(info.skipped)}"
        text += f"; tuned for {info.target_machine}{', reduce_range' if info.reduce_range else ''}"
    if info.max_drop is not None:
        tried = len(info.control_trials or [])
        text += (f"\nmax_drop {info.max_drop:g}: top-1 {info.control_top1:.2f} against float {info.control_top1_float:.2f} "
                 f"on {info.control_images} {info.control} ({tried} quantization{'s' if tried > 1 else ''} tried"
                 f"{'; kept in float by the search: ' + ', '.join(info.fallback) if info.fallback else ''})")
    if before.get("file_bytes") and after.get("file_bytes"):
        text += (f"\nfile {human_bytes(before['file_bytes'])} -> {human_bytes(after['file_bytes'])} "
                 f"({size_ratio(before['file_bytes'], after['file_bytes'])})")
    speed = [f"b{b} {before['latency_ms'][b] / ms:.2f}x" for b, ms in after.get("latency_ms", {}).items()
             if before.get("latency_ms", {}).get(b)]
    if speed:
        text += f"; speedup {', '.join(speed)}" + (" (compiled)" if info.compiled else "")
    return text


@app.command()
@guarded
@step_flags(QuantizeConfig, "method", "calibration_batches", "skip", "max_drop", "epochs", "lr", "compile", "target")
def quantize(model: Path = typer.Argument(..., metavar="MODEL", help="a float model file written by distill (.pt)"),
             options: dict[str, Any] = ...,
             out: Optional[Path] = typer.Option(None, "--out", help="output file", show_default="MODEL-<method>.pt2"),
             force: bool = ForceOpt, data: Optional[str] = DataOpt, data_root: Optional[str] = DataRootOpt,
             subset: Optional[int] = SubsetOpt, val_split: Optional[float] = ValSplitOpt,
             val_from: Optional[str] = ValFromOpt, device: str = DeviceOpt, threads: Optional[int] = ThreadsOpt,
             no_latency: bool = typer.Option(False, "--no-latency", metavar="", help="skip the latency measurements"),
             quiet: bool = QuietOpt, as_json: bool = JsonOpt, trust_code: bool = TrustOpt) -> None:
    """Quantize a saved model to int8 (static, dynamic, QAT) or bf16 / fp16 weights, as a .pt2 program.

    Prints the result beside the float model; `distill eval` loads the .pt2 file.

    Example: distill quantize runs/x/models/student.pt --data-root data/ --out student-int8.pt2
    """
    from distillcli import api

    cfg = step_options(QuantizeConfig, "quantize", **options)
    target = (out or model.with_name(f"{model.stem}-{cfg.method}")).with_suffix(".pt2")
    refuse_overwrite(target, force)
    run = api.quantize(model, cfg, progress=progress_for(quiet, as_json), out=target, trust_code=trust_code, data=data,
                      data_root=data_root, device=device, latency=not no_latency, threads=threads, val_subset=subset,
                      val_split=val_split, val_from=val_from)
    before, after = (run.before.model_dump() if run.before else {}), run.after.model_dump()
    info = run.info
    assert isinstance(info, QuantizeFacts)
    o = Output(as_json, quiet)
    o.result({"source": str(model), "output": str(run.output), "before": before, "after": after,
              "info": info.model_dump(mode="json"), "curve": [r.model_dump() for r in run.record.steps[-1].curve]},
             measures_table(f"quantize {model.name} ({cfg.method})", [("float", before), (run.model.precision, after)]))
    o.info(f"{_quantize_summary(info, before, after)}\nwritten: {run.output}\nnext: distill eval {run.output}")


@app.command()
@guarded
@step_flags(ExportConfig, "format", "int8", "calibration_batches")
def export(model: Path = typer.Argument(..., metavar="MODEL", help="a model file written by distill (.pt, or a .pt2 "
                                        "program)"),
           options: dict[str, Any] = ...,
           out: Optional[Path] = typer.Option(None, "--out", help="output file",
                                              show_default="MODEL-export.<format>, MODEL-int8.onnx with --int8"),
           force: bool = ForceOpt, data: Optional[str] = DataOpt, data_root: Optional[str] = DataRootOpt,
           subset: Optional[int] = SubsetOpt,
           device: str = typer.Option("auto", "--device", help="accepted like every file command's --device, but the "
                                      "export runs on the CPU: the model is traced, and the written file checked "
                                      "against it, where ONNX Runtime and the exported programs run"),
           threads: Optional[int] = ThreadsOpt, quiet: bool = QuietOpt, as_json: bool = JsonOpt,
           trust_code: bool = TrustOpt) -> None:
    """Export a saved model as ONNX (fp32, or int8 with --int8), a torch.export program (.pt2) or an
    AOTInductor package of that program (.aoti, from a .pt2 int8 file too).

    The file is run in its runtime and its outputs compared with the model's.

    Example: distill export runs/x/models/student.pt --format onnx --int8 --data-root data/ --out student.onnx
    """
    from distillcli import api
    from distillcli.modelfile.formats import FORMATS
    from distillcli.report.markdown import human_bytes

    chosen = step_options(ExportConfig, "export", **options)
    target = (out or model.with_name(f"{model.stem}-{'int8' if chosen.int8 else 'export'}")).with_suffix(
        f".{chosen.format}")
    refuse_overwrite(target, force)
    cfg = step_options(ExportConfig, "export", **options, name=target.name, evaluate=False)
    progress = progress_for(quiet, as_json)
    if device not in ("auto", "cpu"):
        progress.message(f"note: export runs on the CPU; --device {device} is not used")
    run = api.export(model, cfg, folder=target.parent, progress=progress, trust_code=trust_code, data=data,
                     data_root=data_root, device="cpu", threads=threads, latency=False, val_subset=subset)
    assert isinstance(run.info, ExportFacts)
    info = run.info.model_copy(update={"file": str(target)})
    fmt = FORMATS.get(info.format)
    Output(as_json, quiet).result(info.model_dump(mode="json", exclude={"step"}), (
        f"wrote {info.file} ({info.format}, {info.precision}, {human_bytes(info.file_bytes)})\n"
        f"{fmt.runtime} vs the model on {info.images} images: top-1 agreement {info.top1_agreement:.1f} %, "
        f"max |logit difference| {info.max_abs_diff:.2g}\n"
        f"next: distill eval {info.file}{' --allow-native' if fmt.runs_native_code else ''}"))
