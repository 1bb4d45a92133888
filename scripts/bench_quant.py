"""Benchmark: int8 against fp32 on CIFAR-10: accuracy, file size, CPU latency, speedup.

    python scripts/bench_quant.py --data-root ../shared/data/cifar10 \
        --weights-dir ../shared/weights/cifar10/akamaster_pytorch_resnet_cifar10 --out bench_results/quant.json

For ResNet-20 / ResNet-56 (pretrained, akamaster) and VGG16-BN (--vgg-checkpoint, a distillcli
model file; otherwise random weights and latency only), through the real quantize step:
  fp32 eager, fp32 compiled (torch.export + inductor with freezing: the fair baseline),
  int8 PTQ (PT2E, x86 inductor quantizer, compiled), int8 QAT (--qat-epochs > 0), bf16 / fp16
  weights (--half), onnxruntime fp32 and int8 (static QDQ, per channel) as `distill export` writes them.
Top-1 on the test set (--val-subset N for the first N), file size as written, median latency
at batch 1 and 64 (channels_last input), speedup against compiled fp32 at batch 64, and the
cold compile time of each program. Accuracy is measured in batches of 64 (the last batch
padded), so compiled programs are compiled for two shapes only. Targets: >= 2.5x at b64;
<= 0.3 points lost by PTQ on ResNet-56.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import torch
from torch import Tensor

from distillcli.modelfile import file_header, load_model, save_model
from distillcli.modelfile.foreign import load_foreign_weights
from distillcli.compress.export import ProgramModule, as_program, export_model
from distillcli.data import load_data
from distillcli.data.bundle import DataBundle
from distillcli.data.config import DataConfig
from distillcli.measure import evaluate, latency_ms
from distillcli.models.build import build_model
from distillcli.models.handle import ArchSpec, ModelHandle
from distillcli.progress import make_progress
from distillcli.steps import STEPS, StepContext
from distillcli.steps.quantize import QuantizeConfig

IMAGENET = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
WEIGHTS = {"resnet20": "resnet20-12fca82f.th", "resnet56": "resnet56-4bfd9763.th"}
BATCH = 64


def padded(fn: Callable[[Tensor], Tensor], size: int = BATCH) -> Callable[[Tensor], Tensor]:
    """Run every batch at ``size`` (zero-padding a short last batch), so a compiled program
    sees one shape for the whole test set."""
    def run(x: Tensor) -> Tensor:
        n = x.shape[0]
        if n < size:
            x = torch.cat([x, x.new_zeros(size - n, *x.shape[1:])]).contiguous(memory_format=torch.channels_last)
        return fn(x)[:n]
    return run


def load(name: str, args: argparse.Namespace) -> tuple[ModelHandle, str]:
    torch.manual_seed(0)
    if name == "vgg16_bn" and args.vgg_checkpoint:
        return load_model(args.vgg_checkpoint).handle, "checkpoint"
    arch = ArchSpec(name, 10, 3, IMAGENET["mean"], IMAGENET["std"])
    handle = ModelHandle(build_model(arch), arch)
    if name in WEIGHTS:
        load_foreign_weights(handle.module, Path(args.weights_dir) / WEIGHTS[name], strip_prefix="module.")
        return handle, "pretrained"
    return handle, "random (latency only)"


def measure(fn: Callable[[Tensor], Tensor], data: DataBundle, path: Path | None, repeats: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    top1 = evaluate(padded(fn), data.val, data.num_classes)["top1"]
    seconds = time.perf_counter() - t0
    lat = {b: latency_ms(fn, data.input_shape, b, repeats=repeats, channels_last=True) for b in (1, BATCH)}
    return {"top1": top1, "file_bytes": path.stat().st_size if path else None, "ms_b1": lat[1],
            f"ms_b{BATCH}": lat[BATCH], "eval_seconds": seconds}


def bench_model(name: str, args: argparse.Namespace, data: DataBundle, ctx: StepContext, tmp: Path) -> list[dict]:
    handle, weights = load(name, args)
    module = handle.module.eval().to(memory_format=torch.channels_last)
    header = file_header(handle, class_names=data.class_names, input_shape=data.input_shape, data=data.spec)
    fp32_file = save_model(tmp / f"{name}.pt", handle, header)
    example = next(iter(data.val))[0][:BATCH]
    rows: list[dict[str, Any]] = []

    def add(variant: str, fn: Callable[[Tensor], Tensor], path: Path | None, extra: dict[str, Any] | None = None) -> None:
        row = {"model": name, "weights": weights, "variant": variant, **measure(fn, data, path, args.repeats),
               **(extra or {})}
        rows.append(row)
        print(f"  {name:9s} {variant:22s} top-1 {row['top1']:6.2f}  b1 {row['ms_b1']:7.2f} ms  "
              f"b{BATCH} {row[f'ms_b{BATCH}']:8.2f} ms", flush=True)

    add("fp32 eager", module, fp32_file)
    compiled = as_program(ModelHandle(module, handle.arch), example).module
    assert isinstance(compiled, ProgramModule)
    compiled.compiled = True
    add("fp32 compiled", compiled, None)
    rows[-1]["compile_s"] = sum(compiled.first_call_s.values())
    methods = [("int8 PTQ", QuantizeConfig(method="static", calibration_batches=args.calibration_batches))]
    if args.qat_epochs:
        methods.append(("int8 QAT", QuantizeConfig(method="qat", epochs=args.qat_epochs, lr=args.qat_lr)))
    if args.half:
        methods += [(f"{kind} weights", QuantizeConfig(method=kind)) for kind in ("bf16", "fp16")]
    for variant, cfg in methods:
        t0 = time.perf_counter()
        out = STEPS.get("quantize").run(ModelHandle(module, handle.arch), ctx, cfg)
        seconds = time.perf_counter() - t0
        path = save_model(tmp / f"{name}-{variant.replace(' ', '-')}.pt2", out.model, header)
        program = out.model.module
        assert isinstance(program, ProgramModule)
        add(variant, program, path, {"quantize_s": seconds})
        rows[-1]["compile_s"] = sum(program.first_call_s.values()) if program.compiled else None
    for variant, calibration in (("onnxruntime fp32", None), ("onnxruntime int8", data.train)):
        result = export_model(ModelHandle(module, handle.arch), header, tmp / f"{name}-{variant.split()[1]}.onnx",
                              "onnx", example, calibration, args.calibration_batches)
        add(variant, load_model(result.path).handle.module, result.path)
    base = next(r for r in rows if r["variant"] == "fp32 compiled")
    for row in rows:
        row["speedup_b1"] = base["ms_b1"] / row["ms_b1"]
        row[f"speedup_b{BATCH}"] = base[f"ms_b{BATCH}"] / row[f"ms_b{BATCH}"]
        row["top1_delta"] = row["top1"] - rows[0]["top1"]
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    head = ["model", "variant", "top-1 %", "Δ top-1", "file KiB", "ms b1", f"ms b{BATCH}", f"speedup b{BATCH}",
            "compile s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        size = f"{r['file_bytes'] / 1024:.0f}" if r["file_bytes"] else "-"
        compile_s = f"{r['compile_s']:.0f}" if r.get("compile_s") else "-"
        lines.append(f"| {r['model']} | {r['variant']} | {r['top1']:.2f} | {r['top1_delta']:+.2f} | {size} | "
                     f"{r['ms_b1']:.2f} | {r[f'ms_b{BATCH}']:.2f} | {r[f'speedup_b{BATCH}']:.2f}x | {compile_s} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default="../shared/data/cifar10")
    parser.add_argument("--weights-dir", default="../shared/weights/cifar10/akamaster_pytorch_resnet_cifar10")
    parser.add_argument("--models", default="resnet20,resnet56,vgg16_bn")
    parser.add_argument("--vgg-checkpoint", help="a trained VGG16-BN distillcli model file (.pt)")
    parser.add_argument("--val-subset", type=int, help="evaluate on the first N test images (default: all 10,000)")
    parser.add_argument("--calibration-batches", type=int, default=16, help="training batches of 128 for calibration")
    parser.add_argument("--qat-epochs", type=int, default=0, help="QAT fine-tune epochs (0: skip QAT; CPU-heavy)")
    parser.add_argument("--qat-lr", type=float, default=0.001)
    parser.add_argument("--train-subset", type=int, help="QAT: train on the first N training images")
    parser.add_argument("--half", action="store_true", help="also bf16 and fp16 weights (uncompiled programs)")
    parser.add_argument("--repeats", type=int, default=20, help="timed runs per latency (median)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="bench_results/quant.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = load_data(DataConfig(name="cifar10", root=args.data_root, batch_size=128, eval_batch_size=BATCH,
                                val_subset=args.val_subset, train_subset=args.train_subset), seed=0, channels_last=True)
    ctx = StepContext(device=torch.device("cpu"), data=data, channels_last=True, progress=make_progress(False))
    rows: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            rows += bench_model(name, args, data, ctx, Path(tmp))
    text = table(rows)
    print(f"\nCIFAR-10 test ({data.val.num_samples} images), {args.threads} threads, speedup against fp32 compiled\n")
    print(text)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"rows": rows, "args": vars(args), "threads": args.threads,
                               "test_images": data.val.num_samples, "seconds": time.perf_counter() - t0}, indent=2))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
