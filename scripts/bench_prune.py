"""Benchmark: does pruning make models faster, and how much accuracy does it cost?

    python scripts/bench_prune.py --data-root ../shared/data/cifar10 \
        --teacher ../shared/weights/cifar10/akamaster_pytorch_resnet_cifar10/resnet56-4bfd9763.th \
        --epochs 1 --out bench_results/prune.json

Part a (latency; weights do not matter, so random init): VGG16-BN and ResNet-56 pruned by
channels to 2x and 4x fewer MACs, and 50 % unstructured for contrast; CPU latency at batch
1 and 64 measured before/after in alternation, and speedup / MAC reduction (goal >= 0.85).
Part b (accuracy): the pretrained ResNet-56 pruned to 2x fewer MACs, then fine-tuned for
--epochs epochs distilling from the unpruned model: CIFAR-10 top-1 before pruning, right
after it, and after each epoch. Everything goes through the real prune step.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch

from distillcli.modelfile.foreign import load_foreign_weights
from distillcli.data import load_data
from distillcli.data.config import DataConfig
from distillcli.measure import evaluate
from distillcli.models.build import build_model
from distillcli.models.handle import ArchSpec, ModelHandle
from distillcli.progress import make_progress
from distillcli.steps import STEPS, StepContext
from distillcli.steps.prune import PruneConfig

IMAGENET = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}


def model(name: str, checkpoint: str | None = None) -> ModelHandle:
    torch.manual_seed(0)
    arch = ArchSpec(name, 10, 3, IMAGENET["mean"], IMAGENET["std"])
    handle = ModelHandle(build_model(arch), arch)
    if checkpoint:
        load_foreign_weights(handle.module, checkpoint, strip_prefix="module.")
    return handle


def prune(handle: ModelHandle, ctx: StepContext, **options: Any) -> tuple[dict[str, Any], list[Any], float]:
    t0 = time.perf_counter()
    out = STEPS.get("prune").run(handle, ctx, PruneConfig(**options))
    return out.info, out.curve, time.perf_counter() - t0


def part_a(ctx: StepContext, round_to: int | None) -> list[dict[str, Any]]:
    cases = [(name, f"channel {target:g}x", {"target_mac_reduction": target, "round_to": round_to})
             for name in ("vgg16_bn", "resnet56") for target in (2.0, 4.0)]
    cases += [(name, "unstructured 50 %", {"method": "unstructured", "sparsity": 0.5}) for name in ("vgg16_bn", "resnet56")]
    rows = []
    for name, label, options in cases:
        info, _, seconds = prune(model(name), ctx, **options)
        rows.append({"model": name, "pruning": label, "ratio": info.get("ratio"), "sparsity": info["sparsity"],
                     "macs_before": info["macs_before"], "macs_after": info["macs_after"],
                     "mac_reduction": info["mac_reduction"], "params_before": info["params_before"],
                     "params_after": info["params_after"], "latency_ms_before": info["latency_ms_before"],
                     "latency_ms_after": info["latency_ms_after"], "speedup_b1": info["speedup_b1"],
                     "speedup_b64": info["speedup_b64"],
                     "speedup_per_mac_reduction_b1": info["speedup_b1"] / info["mac_reduction"],
                     "speedup_per_mac_reduction_b64": info["speedup_b64"] / info["mac_reduction"],
                     "seconds": seconds})
        print(f"  {name:9s} {label:18s} MACs {info['mac_reduction']:.2f}x  speedup b1 {info['speedup_b1']:.2f}x  "
              f"b64 {info['speedup_b64']:.2f}x", flush=True)
    return rows


def part_b(args: argparse.Namespace) -> dict[str, Any]:
    data = load_data(DataConfig(name="cifar10", root=args.data_root, batch_size=128), seed=0, channels_last=True)
    ctx = StepContext(device=torch.device("cpu"), data=data, channels_last=True, progress=make_progress(False))
    handle = model("resnet56", args.teacher)
    top1 = evaluate(handle.module.to(memory_format=torch.channels_last), data.val, data.num_classes)["top1"]
    info, curve, seconds = prune(handle, ctx, target_mac_reduction=2.0, importance=args.importance,
                                 round_to=args.round_to, finetune={"epochs": args.epochs, "lr": args.lr, "distill": True})
    return {"model": "resnet56 (akamaster, pretrained)", "importance": args.importance, "round_to": args.round_to,
            "mac_reduction": info["mac_reduction"], "ratio": info["ratio"], "params_before": info["params_before"],
            "params_after": info["params_after"], "speedup_b1": info["speedup_b1"], "speedup_b64": info["speedup_b64"],
            "top1_unpruned": top1, "top1_after_pruning": info.get("top1_before_finetune"),
            "top1_per_epoch": [row.val_top1 for row in curve],
            "images_per_s": [row.images_per_s for row in curve], "epochs": args.epochs, "lr": args.lr,
            "seconds": seconds}


def print_tables(result: dict[str, Any]) -> None:
    if result.get("latency"):
        print("\n| model | pruning | MACs | MAC reduction | params | speedup b1 | speedup b64 | speedup/MACred b1 | b64 |")
        print("|---|---|---|---|---|---|---|---|---|")
        for r in result["latency"]:
            print(f"| {r['model']} | {r['pruning']} | {r['macs_before'] / 1e6:.1f}M -> {r['macs_after'] / 1e6:.1f}M | "
                  f"{r['mac_reduction']:.2f}x | {r['params_before'] / 1e6:.2f}M -> {r['params_after'] / 1e6:.2f}M | "
                  f"{r['speedup_b1']:.2f}x | {r['speedup_b64']:.2f}x | {r['speedup_per_mac_reduction_b1']:.2f} | "
                  f"{r['speedup_per_mac_reduction_b64']:.2f} |")
    b = result.get("accuracy")
    if b:
        epochs = " | ".join(f"{t:.2f}" for t in b["top1_per_epoch"])
        print(f"\nResNet-56 pruned to {b['mac_reduction']:.2f}x fewer MACs (ratio {b['ratio']:.3f}, {b['importance']}): "
              f"top-1 {b['top1_unpruned']:.2f} unpruned -> {b['top1_after_pruning']:.2f} after pruning -> "
              f"{epochs} after each KD epoch; speedup b1 {b['speedup_b1']:.2f}x, b64 {b['speedup_b64']:.2f}x")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", default="../shared/data/cifar10")
    p.add_argument("--teacher", default="../shared/weights/cifar10/akamaster_pytorch_resnet_cifar10/resnet56-4bfd9763.th")
    p.add_argument("--epochs", type=int, default=1, help="part b: KD fine-tune epochs (CPU: ~2 min each)")
    p.add_argument("--lr", type=float, default=0.01, help="part b: fine-tune learning rate")
    p.add_argument("--importance", default="l1", help="part b: channel importance")
    p.add_argument("--round-to", type=int, default=8, help="channel counts a multiple of this (0: no rounding)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's choice)")
    p.add_argument("--parts", default="ab", help="a (latency), b (accuracy) or ab")
    p.add_argument("--out", type=Path, default=Path("bench_results/prune.json"))
    args = p.parse_args()
    args.round_to = args.round_to or None
    if args.threads:
        torch.set_num_threads(args.threads)
    result: dict[str, Any] = {"threads": torch.get_num_threads(), "round_to": args.round_to, "torch": torch.__version__}
    if "a" in args.parts:
        print("part a: latency (random init, synthetic 32x32 inputs, channels_last)", flush=True)
        synthetic = load_data(DataConfig(name="synthetic", num_classes=10, image_size=32, train_size=64, val_size=64),
                              seed=0, channels_last=True)
        result["latency"] = part_a(StepContext(device=torch.device("cpu"), data=synthetic, channels_last=True),
                                   args.round_to)
    if "b" in args.parts:
        print("part b: accuracy (pretrained ResNet-56, CIFAR-10)", flush=True)
        result["accuracy"] = part_b(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print_tables(result)
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
