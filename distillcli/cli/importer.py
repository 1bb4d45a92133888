"""`distill import CHECKPOINT --arch SPEC --out model.pt`: a foreign checkpoint becomes a model file."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from distillcli.cli.app import app
from distillcli.cli.options import (DeviceOpt, ForceOpt, JsonOpt, QuietOpt, SubsetOpt, ThreadsOpt,
                                    TrustOpt, guarded, progress_for, refuse_overwrite)
from distillcli.output import Output, measures_table


def _pairs(items: list[str] | None, what: str) -> dict[str, str]:
    from distillcli.errors import OptionError

    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise OptionError(f"{what} {item!r} is not KEY=VALUE", f"write e.g. {what} fc=linear")
        out[key] = value
    return out


def _numbers(text: str | None, what: str) -> list[float] | None:
    from distillcli.errors import OptionError

    if text is None:
        return None
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise OptionError(f"{what} {text!r} is not a comma-separated list of numbers", f"e.g. {what} 0.5,0.5,0.5") from None


@app.command("import")
@guarded
def import_(checkpoint: Path = typer.Argument(..., metavar="CHECKPOINT", help="a state_dict file (.pth, .pt, .bin; "
                                              "also {'state_dict': ...}) or .safetensors"),
            arch: str = typer.Option(..., "--arch", help="the architecture: a built-in name, torchvision:<name>, "
                                     "timm:<name> or py:<file.py>:<callable> (`distill list models`)"),
            out: Path = typer.Option(..., "--out", help="the model file to write (.pt)"),
            num_classes: Optional[int] = typer.Option(None, "--num-classes", min=1, help="classes of the classifier",
                                                      show_default="read from the checkpoint"),
            in_channels: int = typer.Option(3, "--in-channels", min=1, max=64, help="image channels"),
            arg: Optional[list[str]] = typer.Option(None, "--arg", help="an architecture option KEY=VALUE "
                                                    "(repeatable; numbers are read as numbers), e.g. width=0.5"),
            strip_prefix: str = typer.Option("", "--strip-prefix", help="remove this prefix from every key, e.g. "
                                             "'module.'"),
            key_map: Optional[list[str]] = typer.Option(None, "--key-map", help="rename a key prefix OLD=NEW "
                                                        "(repeatable), e.g. fc=linear"),
            mean: Optional[str] = typer.Option(None, "--mean", help="the normalisation the model expects, per channel",
                                               show_default="timm's pretrained_cfg, else ImageNet's"),
            std: Optional[str] = typer.Option(None, "--std", help="per-channel std (see --mean)"),
            input_size: Optional[int] = typer.Option(None, "--input-size", min=1, max=4096,
                                                     help="image size recorded without --data",
                                                     show_default="the model's pretrained size, else 224"),
            data: Optional[str] = typer.Option(None, "--data", help="a dataset (`distill list datasets`) to record in "
                                               "the file and evaluate it on"),
            data_root: Optional[str] = typer.Option(None, "--data-root", help="--data's folder", show_default="data"),
            subset: Optional[int] = SubsetOpt,
            device: str = DeviceOpt, threads: Optional[int] = ThreadsOpt, force: bool = ForceOpt,
            trust_code: bool = TrustOpt, quiet: bool = QuietOpt, as_json: bool = JsonOpt) -> None:
    """Turn a checkpoint written by other code (torchvision, timm, your training script) into a model
    file that every command takes. Every key of the checkpoint must be used and every weight of the
    model filled; with --data the file records the data and is evaluated on it.

    Example: distill import resnet18-f37072fd.pth --arch torchvision:resnet18 --out resnet18.pt
    """
    import yaml

    from distillcli.data import DataConfig, load_data
    from distillcli.errors import DataError
    from distillcli.modelfile import file_header, save_model
    from distillcli.modelfile.importer import default_input, import_checkpoint
    from distillcli.models.sources import pretrained_input, trusting_code

    refuse_overwrite(out, force)
    kwargs: dict[str, Any] = {k: yaml.safe_load(v) for k, v in _pairs(arg, "--arg").items()}
    expects = default_input(arch)
    bundle = None
    if data is not None:
        bundle = load_data(DataConfig(name=data, **({"root": data_root} if data_root else {})), device="cpu",
                           pretrained=pretrained_input(arch))
        in_channels, num_classes = bundle.input_shape[0], num_classes or bundle.num_classes
    with trusting_code(trust_code):
        imported = import_checkpoint(checkpoint, arch, num_classes=num_classes, in_channels=in_channels,
                                     kwargs=kwargs, mean=_numbers(mean, "--mean") or expects.mean[:in_channels],
                                     std=_numbers(std, "--std") or expects.std[:in_channels], strip_prefix=strip_prefix,
                                     key_map=_pairs(key_map, "--key-map"), trust_code=trust_code)
    handle = imported.handle
    if bundle is not None and handle.arch.num_classes != bundle.num_classes:
        raise DataError(f"the checkpoint's classifier has {handle.arch.num_classes} classes, {data} has "
                        f"{bundle.num_classes}", "import it without --data, or fine-tune it on this data in a recipe")
    shape = bundle.input_shape if bundle is not None else (in_channels, input_size or expects.size, input_size or expects.size)
    names = bundle.class_names if bundle is not None else [str(i) for i in range(handle.arch.num_classes)]
    written = save_model(out, handle, file_header(handle, class_names=names, input_shape=shape,
                                                  data=bundle.spec if bundle is not None else {}))
    result: dict[str, Any] = {"file": str(written), "arch": arch, "num_classes": handle.arch.num_classes,
                              "keys": imported.keys, "input_shape": list(shape)}
    o = Output(as_json, quiet)
    if bundle is None:
        o.result(result, f"wrote {written}: {arch}, {handle.arch.num_classes} classes, all {imported.keys} checkpoint "
                         f"tensors used\nnext: distill eval {written} --data NAME --data-root DIR")
        return
    from distillcli.engine.file_recipe import run_on_file
    from distillcli.steps.options import EvaluateConfig

    run = run_on_file(written, "evaluate", EvaluateConfig(), progress_for(quiet, as_json), data=data,
                      data_root=data_root, device=device, threads=threads, val_subset=subset, trust_code=trust_code)
    result["measures"] = run.after.model_dump()
    o.result(result, measures_table(f"{written.name} on {data}", [(written.name, result["measures"])]))
    o.info(f"wrote {written} (all {imported.keys} checkpoint tensors used)\nnext: distill prune {written} --sparsity 0.5")
