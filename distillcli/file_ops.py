"""Commands that act on a saved model file: `distill eval`, and one step run on a file
(`distill prune`, `quantize` ...). The file records the data it was trained on; options
may replace it. Results are measured before and after and written as a new model file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from distillcli.modelfile import file_header, load_model, model_suffix, ModelFile, save_model
from distillcli.runtime import resolve_device
from distillcli.data import load_data
from distillcli.data.bundle import DataBundle
from distillcli.modelfile import file_size
from distillcli.measure import measure_model
from distillcli.data.config import DataConfig
from distillcli.errors import DataError, OptionError
from distillcli.models.build import place
from distillcli.models.handle import ModelHandle
from distillcli.runtime import seed_everything
from distillcli.progress import Progress, SilentProgress
from distillcli.steps import STEPS, StepConfig, StepContext, StepOutput


def data_config_for(model_file: ModelFile, data: str | None = None, data_root: str | None = None,
                    **overrides: Any) -> DataConfig:
    """The data the model was trained on, with command-line replacements applied."""
    recorded = dict(model_file.data or {})
    if data is not None and data != recorded.get("name"):
        recorded = {"name": data}  # another dataset: none of the recorded options apply
    if not recorded.get("name"):
        raise DataError(f"{model_file.path} does not record which data it was trained on",
                        "give the data with --data NAME (and --data-root DIR)")
    if data_root is not None:
        recorded["root"] = data_root
    recorded.update({k: v for k, v in overrides.items() if v is not None})
    recorded.pop("download", None)
    try:
        return DataConfig(**recorded)
    except Exception as e:
        raise OptionError(f"the data options are invalid: {e}", "check --data, --data-root and --batch-size") from None


@dataclass
class FileStepResult:
    source: Path
    output: Path
    before: dict[str, Any]
    after: dict[str, Any]
    step: StepOutput


def open_model_with_data(path: str | Path, data: str | None = None, data_root: str | None = None,
                         device: str = "auto", seed: int = 0, channels_last: bool = True,
                         **data_overrides: Any) -> tuple[ModelFile, DataBundle, StepContext]:
    """A model file, its (or the given) data, and a step context on the chosen device."""
    model_file = load_model(path)
    dev = resolve_device(device)
    seed_everything(seed)
    cfg = data_config_for(model_file, data, data_root, **data_overrides)
    bundle = load_data(cfg, device=dev, seed=seed, channels_last=channels_last)
    ctx = StepContext(device=dev, data=bundle, seed=seed, channels_last=channels_last)
    return model_file, bundle, ctx


def measure(handle: ModelHandle, ctx: StepContext, latency: bool = True, repeats: int = 10) -> dict[str, Any]:
    return measure_model(handle.module, ctx.data.val, ctx.data.num_classes, ctx.data.input_shape, ctx.device,
                         latency_batches=(1, 64) if latency else (), repeats=repeats,
                         channels_last=ctx.channels_last)


def run_step_on_file(path: str | Path, kind: str, cfg: StepConfig, out: str | Path, *,
                     data: str | None = None, data_root: str | None = None, device: str = "auto",
                     seed: int = 0, progress: Progress | None = None, latency: bool = True,
                     **data_overrides: Any) -> FileStepResult:
    model_file, bundle, ctx = open_model_with_data(path, data, data_root, device, seed, **data_overrides)
    ctx.progress = progress or SilentProgress()
    handle = model_file.handle
    if handle.kind == "eager":
        handle.module = place(handle.module, ctx.device, ctx.channels_last)
    before = measure(handle, ctx, latency)
    before["file_bytes"] = file_size(Path(path))
    result = STEPS.get(kind).run(handle, ctx, cfg)
    after = measure(result.model, ctx, latency)
    header = file_header(result.model, class_names=bundle.class_names, input_shape=bundle.input_shape,
                         data=bundle.spec, metrics={k: v for k, v in after.items() if k != "per_class_top1"},
                         recipe=model_file.recipe)
    written = save_model(Path(out).with_suffix(model_suffix(result.model)), result.model, header)
    after["file_bytes"] = file_size(written)
    return FileStepResult(Path(path), written, before, after, result)



def evaluate_file(path: str | Path, data: str | None = None, data_root: str | None = None,
                  device: str = "auto", batch_size: int | None = None, val_subset: int | None = None,
                  latency: bool = True, repeats: int = 10) -> dict[str, Any]:
    """`distill eval`: accuracy, size, MACs and latency of a saved model of any kind."""
    model_file, bundle, ctx = open_model_with_data(path, data, data_root, device,
                                                   eval_batch_size=batch_size, val_subset=val_subset)
    handle = model_file.handle
    if bundle.input_shape[0] != model_file.input_shape[0] or bundle.num_classes != handle.arch.num_classes:
        raise DataError(
            f"{path} expects {model_file.input_shape[0]}-channel images and {handle.arch.num_classes} classes; "
            f"{bundle.name} has {bundle.input_shape[0]} channels and {bundle.num_classes} classes",
            "evaluate on the dataset the model was trained on (the default) or one of the same shape")
    if handle.kind == "eager":
        handle.module = place(handle.module, ctx.device, ctx.channels_last)
    measures = measure(handle, ctx, latency, repeats)
    measures["file_bytes"] = file_size(path)
    return {"file": str(path), "kind": handle.kind, "arch": handle.arch.name, "data": bundle.name,
            "data_root": bundle.spec.get("root"), "measures": measures}
