"""Benchmark: int8 against fp32 on CIFAR-10, every file timed where a user loads it.

    python scripts/bench_quant.py --data-root ../shared/data/cifar10 \
        --weights-dir ../shared/weights/cifar10/akamaster_pytorch_resnet_cifar10 --out bench_results/quant.json

For ResNet-20 / ResNet-56 (pretrained, akamaster; ImageNet mean/std as they were trained) and
VGG16-BN (--vgg-checkpoint, a distillcli model file; otherwise random weights, speed only), the
real steps write the files a user would ship: fp32 eager (.pt), fp32 program (.pt2, timed
compiled: the fair baseline), int8 PTQ (.pt2), the same compiled ahead of time (.aoti, an
AOTInductor package), int8 QAT (.pt2, --qat-epochs), onnxruntime fp32 and int8 (.onnx). Each file is then loaded in its own fresh process with the package's loader
(``distillcli.file_timing``): top-1 on the test set there, batch-64 latency asked of the
processes in turn, round after round (median per round; the table gives the median over
rounds, its spread, and the speed-up against compiled fp32 per round), and the first-load
time (imports + load + first call, which compiles) on a cold inductor cache and again on a
warm one. With --qat-epochs, PTQ calibrates on the same training images QAT trains on
(equal data). Targets: int8 >= 2.5x compiled fp32 at batch 64, PTQ within 0.3 pt.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from distillcli.compress.export import as_program, export_file, export_model
from distillcli.data import load_data
from distillcli.data.bundle import DataBundle
from distillcli.data.config import DataConfig
from file_timing import FileTiming, time_files, timing_row
from distillcli.facts import QuantizeFacts
from distillcli.modelfile import file_header, file_size, load_model, save_model
from distillcli.modelfile.native import ALLOW_ENV
from distillcli.models.handle import ModelHandle
from distillcli.progress import make_progress
from distillcli.steps import STEPS, StepContext
from distillcli.steps.quantize import QuantizeConfig

from published import published_model

WEIGHTS = {"resnet20": "resnet20-12fca82f.th", "resnet56": "resnet56-4bfd9763.th"}
BATCH = 64
COMPILE = {"DISTILL_COMPILE": "1"}


def load(name: str, args: argparse.Namespace) -> tuple[ModelHandle, str]:
    torch.manual_seed(0)
    if name == "vgg16_bn" and args.vgg_checkpoint:
        return load_model(args.vgg_checkpoint).handle, "checkpoint"
    if name in WEIGHTS:
        return published_model(name, Path(args.weights_dir) / WEIGHTS[name]), "pretrained"
    return published_model(name), "random (speed only)"


def make_files(name: str, args: argparse.Namespace, data: DataBundle, ctx: StepContext,
               tmp: Path) -> tuple[list[tuple[str, Path, dict[str, str]]], dict[str, dict[str, Any]], str]:
    """Write every variant's file; returns (label, file, worker environment) per variant, what
    making each cost, and where the weights came from."""
    handle, weights = load(name, args)
    module = handle.module.eval()
    def save(variant: ModelHandle, stem: str) -> Path:
        header = file_header(variant, class_names=data.class_names, input_shape=data.input_shape, data=data.spec)
        return save_model(tmp / stem, variant, header)

    example = next(iter(data.val))[0][:2]
    files = [("fp32 eager", save(handle, name), {})]
    files.append(("fp32 compiled", save(as_program(ModelHandle(module, handle.arch), example), f"{name}-fp32"), COMPILE))
    made: dict[str, dict[str, Any]] = {}
    methods = [("int8 PTQ", QuantizeConfig(method="static", calibration_batches=args.calibration_batches,
                                           compile=False))]
    if args.qat_epochs:
        methods.append(("int8 QAT", QuantizeConfig(method="qat", epochs=args.qat_epochs, lr=args.qat_lr,
                                                   compile=False)))
    for variant, cfg in methods:
        t0 = time.perf_counter()
        out = STEPS.get("quantize").run(ModelHandle(module, handle.arch), ctx, cfg)
        assert isinstance(out.info, QuantizeFacts)
        made[variant] = {"seconds": time.perf_counter() - t0,
                         "s_per_epoch": [r.seconds for r in out.curve] or None,
                         "calibration_images": out.info.calibration_images}
        files.append((variant, save(out.model, f"{name}-{variant.split()[1].lower()}"), {}))
        if variant == "int8 PTQ":  # the same program compiled ahead of time: machine code, opt-in to load
            t0 = time.perf_counter()
            package = export_file(load_model(files[-1][1]), "aoti", tmp / f"{name}-ptq").path
            made["int8 PTQ, AOTInductor"] = {"seconds": time.perf_counter() - t0}
            files.append(("int8 PTQ, AOTInductor", package, {ALLOW_ENV: "1"}))
    for variant, calibration in (("onnxruntime fp32", None), ("onnxruntime int8", data.train)):
        header = file_header(handle, class_names=data.class_names, input_shape=data.input_shape, data=data.spec)
        result = export_model(ModelHandle(module, handle.arch), header, tmp / f"{name}-{variant.split()[1]}.onnx",
                              "onnx", example, calibration, args.calibration_batches)
        files.append((variant, result.path, {}))
    return files, made, weights


def rows_of(name: str, weights: str, timings: list[FileTiming], made: dict[str, dict[str, Any]]) -> list[dict]:
    base = next(t for t in timings if t.label == "fp32 compiled")
    reference = timings[0].top1
    rows = []
    for t in timings:  # timings at batch BATCH
        rows.append({"model": name, "weights": weights, **timing_row(base, t), "file_bytes": file_size(t.path),
                     "top1_delta": None if t.top1 is None or reference is None else t.top1 - reference,
                     **made.get(t.label, {})})
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    head = ["model", "variant", "top-1 %", "Δ", "file KiB", f"ms b{BATCH} (IQR)", f"speed-up b{BATCH} (range)",
            "first load s", "next load s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        top1 = "–" if r["top1"] is None else f"{r['top1']:.2f}"
        delta = "–" if r["top1_delta"] is None or r["label"] == "fp32 eager" else f"{r['top1_delta']:+.2f}"
        later = "–" if r["later_load_s"] is None else f"{r['later_load_s']:.1f}"
        lines.append(f"| {r['model']} | {r['label']} | {top1} | {delta} | {r['file_bytes'] / 1024:.0f} | "
                     f"{r['ms']:.1f} ({r['iqr_ms']:.1f}) | {r['speedup']:.2f}x "
                     f"({r['speedup_range'][0]:.2f}-{r['speedup_range'][1]:.2f}) | {r['first_load_s']:.1f} | {later} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default="../shared/data/cifar10")
    parser.add_argument("--weights-dir", default="../shared/weights/cifar10/akamaster_pytorch_resnet_cifar10")
    parser.add_argument("--models", default="resnet20,resnet56,vgg16_bn")
    parser.add_argument("--vgg-checkpoint", help="a trained VGG16-BN distillcli model file (.pt)")
    parser.add_argument("--val-subset", type=int, help="evaluate on the first N test images (default: all 10,000)")
    parser.add_argument("--calibration-batches", type=int, default=16, help="training batches of 128 for calibration "
                        "(with --qat-epochs: as many as QAT trains on)")
    parser.add_argument("--qat-epochs", type=int, default=0, help="QAT fine-tune epochs (0: skip QAT; CPU-heavy)")
    parser.add_argument("--qat-lr", type=float, default=0.001)
    parser.add_argument("--train-subset", type=int, help="QAT (and then calibration): the first N training images")
    parser.add_argument("--rounds", type=int, default=7, help="timing rounds (every file timed once per round)")
    parser.add_argument("--calls", type=int, default=5, help="timed calls per file per round (their median counts)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="bench_results/quant.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = load_data(DataConfig(name="cifar10", root=args.data_root, batch_size=128, eval_batch_size=BATCH,
                                val_subset=args.val_subset, train_subset=args.train_subset), seed=0, channels_last=True)
    if args.qat_epochs:  # equal data: PTQ calibrates on every image QAT trains on
        args.calibration_batches = math.ceil(data.train.num_samples / 128)
    ctx = StepContext(device=torch.device("cpu"), data=data, channels_last=True, progress=make_progress(False))
    evaluate = ["--data-root", args.data_root] + (["--val-subset", str(args.val_subset)] if args.val_subset else [])
    rows: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            files, made, weights = make_files(name, args, data, ctx, Path(tmp))
            timings = time_files(files, BATCH, args.rounds, args.calls, args.threads, Path(tmp) / f"inductor-{name}",
                                 evaluate, log=lambda text: print(f"  {name}: {text}", flush=True))
            rows += rows_of(name, weights, timings, made)
    print(f"\nCIFAR-10 test ({data.val.num_samples} images), {args.threads} threads, each file in a fresh process; "
          "speed-up against the compiled fp32 program\n")
    print(table(rows))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"rows": rows, "args": vars(args), "threads": args.threads,
                               "test_images": data.val.num_samples, "seconds": time.perf_counter() - t0}, indent=2))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
