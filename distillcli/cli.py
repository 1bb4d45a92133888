"""The command tree. Every command is a thin call into the library; this is the only place
that turns a DistillError into a message on stderr and an exit code (2: bad input, 1: a
failure while running). DISTILL_DEBUG=1 shows tracebacks."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, Callable, Optional

import typer

from distillcli.errors import DistillError
from distillcli.output import Output, measures_table

app = typer.Typer(
    help="Make PyTorch image models smaller and faster: distillation, pruning, quantization, export.\n\n"
         "Start with:  distill run recipes/quickstart.yaml",
    no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
)

DeviceOpt = typer.Option(None, "--device", help="auto | cpu | cuda | cuda:N | mps (overrides the recipe)")
JsonOpt = typer.Option(False, "--json", help="print one JSON object on stdout (for scripts)")
QuietOpt = typer.Option(False, "--quiet", "-q", help="no progress output")
SetOpt = typer.Option(None, "--set", help="override a recipe key: --set steps.0.epochs=1 (repeatable)")


def _fail(message: str, code: int) -> None:
    sys.stderr.write(f"error: {message}\n")
    raise typer.Exit(code)


def guarded(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Run a command, mapping errors to one message and an exit code, never a traceback."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if os.environ.get("DISTILL_DEBUG") == "1":
            return fn(*args, **kwargs)
        try:
            return fn(*args, **kwargs)
        except DistillError as e:
            _fail(str(e), e.exit_code)
        except KeyboardInterrupt:
            _fail("interrupted", 130)
        except typer.Exit:
            raise
        except Exception as e:  # a bug: say so briefly; the traceback is one variable away
            _fail(f"{type(e).__name__}: {e}\n  -> this is a bug in distillcli; rerun with DISTILL_DEBUG=1 "
                  "for the traceback and report it", 1)

    return wrapper


def _overrides(sets: list[str] | None, device: str | None, seed: int | None) -> list[str]:
    out = list(sets or [])
    if device is not None:
        out.append(f"device={device}")
    if seed is not None:
        out.append(f"seed={seed}")
    return out


@app.command()
@guarded
def run(recipe: Path = typer.Argument(..., help="the recipe YAML file"),
        set_: Optional[list[str]] = SetOpt, device: Optional[str] = DeviceOpt,
        seed: Optional[int] = typer.Option(None, "--seed", help="random seed (overrides the recipe)"),
        out: Optional[Path] = typer.Option(None, "--out", help="run directory (default runs/<name>-<time>)"),
        quiet: bool = QuietOpt, as_json: bool = JsonOpt) -> None:
    """Run a recipe: train / distill / compress, evaluate after every step, write the report.

    Example: distill run recipes/vgg16_cifar10.yaml --set steps.0.epochs=1 --device cpu
    """
    from distillcli.pipeline import Pipeline
    from distillcli.progress import make_progress
    from distillcli.recipe import load_recipe

    r = load_recipe(recipe, _overrides(set_, device, seed))
    result = Pipeline(r, make_progress(quiet or as_json), out=out, recipe_file=str(recipe)).run()
    steps = [{"index": s["index"], "kind": s["kind"], "target": s["target"], "model_file": s["model_file"],
              **{k: v for k, v in s["measures"].items() if k != "per_class_top1"}} for s in result.metrics["steps"]]
    summary = {"status": result.metrics["run"]["status"], "run_dir": str(result.run_dir),
               "metrics": str(result.run_dir / "metrics.json"), "report": str(result.run_dir / "report.md"),
               "steps": steps}
    rows = [(f"{s['index']} {s['kind']} [{s['target']}]", s["measures"]) for s in result.metrics["steps"]]
    o = Output(as_json, quiet)
    o.result(summary, measures_table(f"run {r.name}", rows))
    final = next((s["model_file"] for s in reversed(result.metrics["steps"]) if s["model_file"]), None)
    o.info(f"report: {result.run_dir / 'report.md'}" + (f"\nnext: distill eval {result.run_dir / final}" if final else ""))


@app.command("eval")
@guarded
def eval_(model: Path = typer.Argument(..., help="a model file written by distill (.pt, .pt2, .onnx)"),
          data: Optional[str] = typer.Option(None, "--data", help="dataset name (default: the one recorded in the file)"),
          data_root: Optional[str] = typer.Option(None, "--data-root", help="dataset folder"),
          device: str = typer.Option("auto", "--device", help="auto | cpu | cuda | cuda:N | mps"),
          batch_size: Optional[int] = typer.Option(None, "--batch-size", min=1),
          subset: Optional[int] = typer.Option(None, "--subset", min=1, help="evaluate only the first N samples"),
          no_latency: bool = typer.Option(False, "--no-latency", help="skip the latency measurement"),
          as_json: bool = JsonOpt) -> None:
    """Evaluate a saved model: accuracy, size, MACs and latency, in a fresh process.

    Example: distill eval runs/quickstart-*/models/student.pt --data-root data/
    """
    from distillcli.file_ops import evaluate_file

    result = evaluate_file(model, data, data_root, device, batch_size, subset, latency=not no_latency)
    Output(as_json).result(result, measures_table(f"{model} on {result['data']}", [(model.name, result["measures"])]))


def _step_options(config: type[Any], command: str, **values: Any) -> Any:
    """A step's options from command-line values; a bad value is an OptionError (exit 2)."""
    from pydantic import ValidationError

    from distillcli.errors import OptionError

    try:
        return config(**{k: v for k, v in values.items() if v is not None})
    except ValidationError as e:
        problems = "; ".join(
            (f"--{'.'.join(map(str, err['loc'])).replace('_', '-')}: " if err["loc"] else "")
            + err["msg"].removeprefix("Value error, ") for err in e.errors())
        raise OptionError(f"invalid options: {problems}", f"see `distill {command} --help`") from None


def _prune_summary(info: dict[str, Any]) -> str:
    from distillcli.report.markdown import human_bytes

    if info["method"] == "unstructured":
        return (f"sparsity {100 * info['sparsity']:.1f} % of the conv/linear weights; stored sparse "
                f"{human_bytes(info['sparse_bytes'])} instead of {human_bytes(info['dense_bytes'])}\n"
                f"note: {info['note']}")
    text = (f"channels removed {100 * info['sparsity']:.1f} % (ratio {info['ratio']:.3f}); "
            f"MACs {info.get('mac_reduction', 0):.2f}x fewer, params {info['params_before'] / info['params_after']:.2f}x fewer")
    speed = [f"b{b[len('speedup_b'):]} {v:.2f}x" for b, v in info.items() if b.startswith("speedup_b")]
    if speed and info.get("mac_reduction"):
        text += f"; measured speedup {', '.join(speed)} (MAC reduction {info['mac_reduction']:.2f}x)"
    return text


@app.command()
@guarded
def prune(model: Path = typer.Argument(..., help="a model file written by distill (.pt)"),
          sparsity: Optional[float] = typer.Option(None, "--sparsity", help="fraction of channels (unstructured: "
                                                   "weights) to remove, e.g. 0.5"),
          target_mac_reduction: Optional[float] = typer.Option(None, "--target-mac-reduction",
                                                               help="channel: prune until N times fewer MACs, e.g. 2"),
          method: str = typer.Option("channel", "--method", help="channel (smaller and faster) | unstructured (sparser)"),
          importance: str = typer.Option("l1", "--importance", help="channel score: l1 | l2 | bn_scale | taylor"),
          scope: str = typer.Option("layer", "--scope", help="layer (same ratio everywhere) | global (rank all layers)"),
          round_to: Optional[int] = typer.Option(None, "--round-to", help="keep channel counts a multiple of N"),
          ignore: Optional[list[str]] = typer.Option(None, "--ignore", help="layer pattern never pruned (repeatable); "
                                                     "'stem' = the first convolution"),
          schedule: str = typer.Option("oneshot", "--schedule", help="oneshot | iterative | gradual (unstructured)"),
          iterations: Optional[int] = typer.Option(None, "--iterations", help="iterative: prune + fine-tune rounds"),
          finetune_epochs: int = typer.Option(0, "--finetune-epochs", help="fine-tune epochs after pruning"),
          lr: Optional[float] = typer.Option(None, "--lr", help="fine-tune learning rate (default 0.01)"),
          distill: bool = typer.Option(True, "--distill/--no-distill", help="fine-tune by distilling from the unpruned model"),
          out: Optional[Path] = typer.Option(None, "--out", help="output model file (default: MODEL-pruned.pt)"),
          data: Optional[str] = typer.Option(None, "--data", help="dataset name (default: the one recorded in the file)"),
          data_root: Optional[str] = typer.Option(None, "--data-root", help="dataset folder"),
          device: str = typer.Option("auto", "--device", help="auto | cpu | cuda | cuda:N | mps"),
          quiet: bool = QuietOpt, as_json: bool = JsonOpt) -> None:
    """Prune a saved model: remove channels (smaller, faster) or zero weights; prints before/after.

    Example: distill prune runs/x/models/student.pt --target-mac-reduction 2 --finetune-epochs 1 --data-root data/
    """
    from distillcli.file_ops import run_step_on_file
    from distillcli.progress import make_progress
    from distillcli.steps.prune import PruneConfig

    cfg = _step_options(PruneConfig, "prune", method=method, sparsity=sparsity, target_mac_reduction=target_mac_reduction,
                        importance=importance, scope=scope, round_to=round_to, ignore=ignore, schedule=schedule,
                        iterations=iterations, finetune={"epochs": finetune_epochs, "distill": distill,
                                                         **({"lr": lr} if lr is not None else {})})
    target = out or model.with_name(f"{model.stem}-pruned.pt")
    result = run_step_on_file(model, "prune", cfg, target, data=data, data_root=data_root, device=device,
                              progress=make_progress(quiet or as_json))
    info = result.step.info
    o = Output(as_json, quiet)
    o.result({"source": str(model), "output": str(result.output), "before": result.before, "after": result.after,
              "info": info, "curve": result.step.curve},
             measures_table(f"prune {model.name} ({cfg.method})", [("before", result.before), ("after", result.after)]))
    o.info(f"{_prune_summary(info)}\nwritten: {result.output}\nnext: distill eval {result.output}")


@app.command()
@guarded
def sensitivity(model: Path = typer.Argument(..., help="a model file written by distill (.pt)"),
                ratios: str = typer.Option("0.25,0.5,0.75", "--ratios", help="comma-separated fractions of a layer's "
                                           "channels to remove"),
                importance: str = typer.Option("l1", "--importance", help="l1 | l2 | bn_scale | taylor"),
                ignore: Optional[list[str]] = typer.Option(None, "--ignore", help="layer pattern to skip (repeatable)"),
                budget: float = typer.Option(1.0, "--budget", help="accuracy drop (percentage points) allowed per "
                                             "layer in the suggested overrides"),
                out: Path = typer.Option(Path("sensitivity"), "--out", help="folder for sensitivity.csv and .png"),
                data: Optional[str] = typer.Option(None, "--data", help="dataset name (default: the one recorded in the file)"),
                data_root: Optional[str] = typer.Option(None, "--data-root", help="dataset folder"),
                subset: Optional[int] = typer.Option(None, "--subset", min=1, help="evaluate on the first N validation samples"),
                device: str = typer.Option("auto", "--device", help="auto | cpu | cuda | cuda:N | mps"),
                quiet: bool = QuietOpt, as_json: bool = JsonOpt) -> None:
    """Prune each layer alone at several ratios and measure accuracy; writes a CSV, a plot and
    suggested per-layer ratios (`overrides:` for the prune step).

    Example: distill sensitivity runs/x/models/student.pt --data-root data/ --subset 2000 --budget 0.5
    """
    from rich.table import Table

    from distillcli.compress.pruning import analyse, overrides_yaml
    from distillcli.errors import CompressionError, OptionError
    from distillcli.file_ops import open_model_with_data
    from distillcli.models.build import place
    from distillcli.progress import make_progress

    try:
        fractions = [float(r) for r in ratios.split(",") if r.strip()]
    except ValueError:
        fractions = []
    if not fractions or not all(0 < r < 1 for r in fractions):
        raise OptionError(f"--ratios {ratios!r}: expected comma-separated fractions in (0, 1)", "e.g. --ratios 0.25,0.5,0.75")
    model_file, bundle, ctx = open_model_with_data(model, data, data_root, device, val_subset=subset)
    if model_file.handle.kind != "eager":
        raise CompressionError(f"cannot analyse a {model_file.handle.kind!r} model", "use the model before quantizing or exporting")
    module = place(model_file.handle.module, ctx.device, ctx.channels_last)
    result = analyse(module, bundle, ctx.device, fractions, importance, list(ignore or []),  # type: ignore[arg-type]
                     progress=make_progress(quiet or as_json))
    result.write_csv(out / "sensitivity.csv")
    result.plot(out / "sensitivity.png")
    suggested = result.suggest(budget)
    table = Table(title=f"sensitivity of {model.name} (unpruned top-1 {result.baseline_top1:.2f} %)")
    for col in ["layer", "channels", *[f"top-1 @{r:g}" for r in fractions], "suggested"]:
        table.add_column(col, justify="left" if col == "layer" else "right")
    for layer in result.layers():
        rows = {r.ratio: r for r in result.rows if r.layer == layer}
        table.add_row(layer, str(rows[fractions[0]].channels), *[f"{rows[r].top1:.2f}" for r in fractions],
                      f"{suggested[layer]:g}")
    o = Output(as_json, quiet)
    o.result({"model": str(model), "baseline_top1": result.baseline_top1, "rows": [vars(r) for r in result.rows],
              "suggested_overrides": suggested, "budget": budget, "csv": str(out / "sensitivity.csv"),
              "plot": str(out / "sensitivity.png")}, table)
    o.info(f"wrote {out / 'sensitivity.csv'} and {out / 'sensitivity.png'}\n"
           f"per-layer ratios within a {budget:g}-point drop, for the prune step:\n{overrides_yaml(suggested)}")


def _quantize_summary(info: dict[str, Any], before: dict[str, Any], after: dict[str, Any]) -> str:
    from distillcli.report.markdown import human_bytes

    text = f"method {info['method']}"
    if "int8_layers" in info:
        text += f": {info['int8_layers']} int8 layers ({100 * info['int8_weight_share']:.1f} % of the weights)"
        if info.get("skipped"):
            text += f", kept in float: {', '.join(info['skipped'])}"
    if before.get("file_bytes") and after.get("file_bytes"):
        text += (f"\nfile {human_bytes(before['file_bytes'])} -> {human_bytes(after['file_bytes'])} "
                 f"({before['file_bytes'] / after['file_bytes']:.2f}x smaller)")
    speed = [f"b{b} {before['latency_ms'][b] / ms:.2f}x" for b, ms in after.get("latency_ms", {}).items()
             if before.get("latency_ms", {}).get(b)]
    if speed:
        text += f"; speedup {', '.join(speed)}" + (" (compiled)" if info.get("compiled") else "")
    return text


@app.command()
@guarded
def quantize(model: Path = typer.Argument(..., help="a float model file written by distill (.pt)"),
             method: str = typer.Option("static", "--method", help="static | dynamic | qat | bf16 | fp16"),
             calibration_batches: Optional[int] = typer.Option(None, "--calibration-batches", min=1,
                                                               help="static: training batches that calibrate "
                                                                    "the int8 ranges (default 16)"),
             skip: Optional[list[str]] = typer.Option(None, "--skip", help="int8: layer pattern kept in float "
                                                      "(repeatable), e.g. 'net.conv1'"),
             epochs: Optional[int] = typer.Option(None, "--epochs", help="qat: fine-tune epochs (default 1)"),
             lr: Optional[float] = typer.Option(None, "--lr", help="qat: learning rate (default 0.001)"),
             compile_: Optional[bool] = typer.Option(None, "--compile/--no-compile", help="compile the program "
                                                     "before measuring it (default: int8 only)"),
             out: Optional[Path] = typer.Option(None, "--out", help="output file (default: MODEL-<method>.pt2)"),
             data: Optional[str] = typer.Option(None, "--data", help="dataset name (default: the one recorded in the file)"),
             data_root: Optional[str] = typer.Option(None, "--data-root", help="dataset folder"),
             device: str = typer.Option("auto", "--device", help="auto | cpu | cuda | cuda:N | mps"),
             no_latency: bool = typer.Option(False, "--no-latency", help="skip the latency measurements"),
             quiet: bool = QuietOpt, as_json: bool = JsonOpt) -> None:
    """Quantize a saved model to int8 (static, dynamic, QAT) or bf16 / fp16 weights, as a .pt2 program.

    Prints the result beside the float model; `distill eval` loads the .pt2 file.

    Example: distill quantize runs/x/models/student.pt --data-root data/ --out student-int8.pt2
    """
    from distillcli.file_ops import run_step_on_file
    from distillcli.progress import make_progress
    from distillcli.steps.quantize import QuantizeConfig

    cfg = _step_options(QuantizeConfig, "quantize", method=method, calibration_batches=calibration_batches,
                        skip=skip, epochs=epochs, lr=lr, compile=compile_)
    target = out or model.with_name(f"{model.stem}-{method}.pt2")
    result = run_step_on_file(model, "quantize", cfg, target, data=data, data_root=data_root, device=device,
                              progress=make_progress(quiet or as_json), latency=not no_latency)
    info = result.step.info
    o = Output(as_json, quiet)
    o.result({"source": str(model), "output": str(result.output), "before": result.before, "after": result.after,
              "info": info, "curve": result.step.curve},
             measures_table(f"quantize {model.name} ({method})",
                            [("float", result.before), (result.step.model.kind, result.after)]))
    o.info(f"{_quantize_summary(info, result.before, result.after)}\nwritten: {result.output}\n"
           f"next: distill eval {result.output}")


@app.command()
@guarded
def export(model: Path = typer.Argument(..., help="a model file written by distill (.pt, or a .pt2 program)"),
           format_: str = typer.Option("onnx", "--format", help="onnx | pt2"),
           int8: bool = typer.Option(False, "--int8", help="onnx: int8 by onnxruntime (static, QDQ, per channel), "
                                     "calibrated on the training data"),
           calibration_batches: int = typer.Option(16, "--calibration-batches", min=1,
                                                   help="--int8: training batches that calibrate the ranges"),
           out: Optional[Path] = typer.Option(None, "--out", help="output file (default: MODEL-export.<format>)"),
           data: Optional[str] = typer.Option(None, "--data", help="--int8: dataset name (default: the one recorded "
                                              "in the file)"),
           data_root: Optional[str] = typer.Option(None, "--data-root", help="--int8: dataset folder"),
           as_json: bool = JsonOpt) -> None:
    """Export a saved model as ONNX (fp32, or int8 with --int8) or a torch.export program (.pt2).

    The file is run in its runtime and its outputs compared with the model's.

    Example: distill export runs/x/models/student.pt --format onnx --int8 --data-root data/ --out student.onnx
    """
    from distillcli.modelfile import load_model
    from distillcli.compress.export import export_file
    from distillcli.file_ops import open_model_with_data
    from distillcli.report.markdown import human_bytes

    if int8:
        model_file, bundle, _ = open_model_with_data(model, data, data_root, "cpu")
        calibration = bundle.train
    else:
        model_file, calibration = load_model(model), None
    target = out or model.with_name(f"{model.stem}-{'int8' if int8 else 'export'}.{format_}")
    result = export_file(model_file, format_, target, calibration, calibration_batches)
    check = result.check
    runtime = "onnxruntime" if result.format == "onnx" else "torch.export"
    Output(as_json).result(result.summary(), (
        f"wrote {result.path} ({result.format}, {result.precision}, {human_bytes(result.file_bytes)})\n"
        f"{runtime} vs the model on {check['images']} images: top-1 agreement {check['top1_agreement']:.1f} %, "
        f"max |logit difference| {check['max_abs_diff']:.2g}\nnext: distill eval {result.path}"))


@app.command()
@guarded
def validate(recipe: Path = typer.Argument(..., help="the recipe YAML file"),
             set_: Optional[list[str]] = SetOpt, as_json: bool = JsonOpt) -> None:
    """Check a recipe without running it; reports every problem at once.

    Example: distill validate recipes/resnet56_resnet20_cifar10.yaml
    """
    from distillcli.recipe import load_recipe

    r = load_recipe(recipe, list(set_ or []))
    steps = [kind for kind, _ in r.step_list()]
    Output(as_json).result({"valid": True, "name": r.name, "steps": steps},
                           f"{recipe}: valid ({len(steps)} steps: {' -> '.join(steps) or 'none'})")


@app.command()
@guarded
def schema(out: Optional[Path] = typer.Option(None, "--out", help="write to this file instead of stdout")) -> None:
    """Print the recipe's JSON Schema (for editor completion and validation).

    Example: distill schema --out recipe.schema.json
    """
    from distillcli.atomic_write import write_text
    from distillcli.recipe import recipe_schema

    text = json.dumps(recipe_schema(), indent=2)
    if out:
        write_text(out, text + "\n")
    else:
        sys.stdout.write(text + "\n")


@app.command("list")
@guarded
def list_(what: str = typer.Argument(..., help="models | datasets | steps | losses"),
          pattern: str = typer.Argument("*", help="wildcard filter, e.g. 'resnet*'"),
          as_json: bool = JsonOpt) -> None:
    """List the registered models, datasets, steps or losses.

    Example: distill list models 'resnet*'
    """
    from distillcli.data import DATASETS
    from distillcli.errors import OptionError
    from distillcli.losses import LOSSES
    from distillcli.models.backbones import list_models
    from distillcli.registry import closest
    from distillcli.steps import STEPS

    sources = {"models": list_models, "datasets": DATASETS.names, "steps": STEPS.names, "losses": LOSSES.names}
    if what not in sources:
        guess = closest(what, list(sources))
        raise OptionError(f"cannot list {what!r}", f"did you mean {guess!r}?" if guess else f"choose one of {', '.join(sources)}")
    names = sources[what](pattern)
    Output(as_json).result({what: names}, "\n".join(names))


def main() -> None:
    from distillcli.runtime import keep_freed_memory

    keep_freed_memory()
    app()
