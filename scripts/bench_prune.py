"""Benchmark: does pruning make models faster, and how much accuracy does it cost?

    python scripts/bench_prune.py --data-root ../shared/data/cifar10 \
        --teacher ../shared/weights/cifar10/akamaster_pytorch_resnet_cifar10/resnet56-4bfd9763.th \
        --epochs 1 --out bench_results/prune.json

Part a (speed; weights do not matter, so random init): VGG16-BN and ResNet-56 pruned by
channels to 2x and 4x fewer MACs, ResNet-56 2x once more without channel rounding
(round_to null, against the default), and 50 % unstructured for contrast; CPU latency at
batch 1 and 64 measured before/after in alternation, speedup / MAC reduction (goal >= 0.85),
and the training speed-up: one SGD step at batch 64 of the pruned and the dense model,
alternating in this process (median and range of the per-pair ratios).
`--quick` is a smoke run: ResNet-20 only, few repeats, no part b.
Part b (accuracy): the pretrained ResNet-56 pruned to 2x fewer MACs, then fine-tuned for
--epochs epochs distilling from the unpruned model: CIFAR-10 top-1 before pruning, right
after it, and after each epoch. Everything goes through the real prune step.
Part c (where users stand): the mission's command, `distill prune model.pt --sparsity 0.5`, run
as a user runs it (a subprocess) on ResNet-56 and VGG16-BN files; the dense and the pruned
file, and both exported as .pt2 programs (compiled where loaded), are then each loaded in a
fresh process (distillcli.file_timing) and timed at batch 64 in turn, round after round: speed-up (median and range of the per-round ratios) against the MAC
reduction, and the first-load time. Targets: >= 0.75 of the MAC reduction on ResNet-56, >= 0.9
on VGG16.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from distillcli.data import load_data
from distillcli.data.config import DataConfig
from distillcli.facts import PruneFacts
from distillcli.machine import this_machine
from distillcli.measure import evaluate
from distillcli.models.build import place
from distillcli.models.handle import ModelHandle
from distillcli.progress import make_progress
from distillcli.runtime import resolve_round_to
from distillcli.steps import STEPS, StepContext
from distillcli.steps.prune import PruneConfig

from published import published_model

COMPILED = {"DISTILL_COMPILE": "1"}  # an fp32 program is compiled where it is loaded only when asked


def model(name: str, checkpoint: str | None = None) -> ModelHandle:
    torch.manual_seed(0)
    return published_model(name, checkpoint)


def prune(handle: ModelHandle, ctx: StepContext, **options: Any) -> tuple[PruneFacts, nn.Module, list[Any], float]:
    """The prune step's facts, the pruned module, its curve and its time."""
    t0 = time.perf_counter()
    out = STEPS.get("prune").run(handle, ctx, PruneConfig(**options))
    assert isinstance(out.info, PruneFacts)
    return out.info, out.model.module, out.curve, time.perf_counter() - t0


def train_step_ms(module: nn.Module, images: torch.Tensor, labels: torch.Tensor, steps: int) -> float:
    """Milliseconds per training step (forward, cross-entropy, backward, SGD with momentum)."""
    opt = torch.optim.SGD(module.parameters(), lr=0.01, momentum=0.9)
    module.train()
    t0 = time.perf_counter()
    for _ in range(steps):
        loss = F.cross_entropy(module(images), labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return 1000.0 * (time.perf_counter() - t0) / steps


def train_speedup(dense: nn.Module, pruned: nn.Module, ctx: StepContext, rounds: int, steps: int,
                  batch: int = 64) -> dict[str, Any]:
    """Training steps of both models in alternation (load hits both alike); copies, so the
    models themselves are left as they were."""
    torch.manual_seed(0)
    images = torch.rand(batch, *ctx.data.input_shape).to(memory_format=torch.channels_last)
    labels = torch.randint(0, ctx.data.num_classes, (batch,))
    dense, pruned = copy.deepcopy(dense), copy.deepcopy(pruned)
    train_step_ms(dense, images, labels, 1), train_step_ms(pruned, images, labels, 1)  # warm-up
    before, after = [], []
    for _ in range(rounds):
        before.append(train_step_ms(dense, images, labels, steps))
        after.append(train_step_ms(pruned, images, labels, steps))
    ratios = [b / a for b, a in zip(before, after)]
    return {"train_ms_before": statistics.median(before), "train_ms_after": statistics.median(after),
            "train_speedup": statistics.median(ratios), "train_speedup_range": [min(ratios), max(ratios)]}


def part_a(ctx: StepContext, round_to: int | str | None, quick: bool) -> list[dict[str, Any]]:
    names, targets = (("resnet20",), (2.0,)) if quick else (("vgg16_bn", "resnet56"), (2.0, 4.0))
    label = "" if round_to == "auto" else f", round_to {round_to}"
    cases = [(name, f"channel {target:g}x{label}", {"target_mac_reduction": target, "round_to": round_to})
             for name in names for target in targets]
    if round_to is not None:  # the unrounded default of old, against this run's rounding
        cases.append((names[-1], "channel 2x, round_to null", {"target_mac_reduction": 2.0, "round_to": None}))
    if not quick:
        cases += [(name, "unstructured 50 %", {"method": "unstructured", "sparsity": 0.5}) for name in names]
    rounds, steps = (2, 1) if quick else (7, 3)
    rows = []
    for name, label, options in cases:
        handle = model(name)
        # placed as the step places the pruned model; a copy, since unstructured pruning edits in place
        dense = place(copy.deepcopy(handle.module), ctx.device, ctx.channels_last)
        info, pruned, _, seconds = prune(handle, ctx, **options)
        train = train_speedup(dense, pruned, ctx, rounds, steps)
        rows.append({"model": name, "pruning": label, "ratio": info.ratio, "sparsity": info.sparsity,
                     "macs_before": info.macs_before, "macs_after": info.macs_after,
                     "mac_reduction": info.mac_reduction, "params_before": info.params_before,
                     "params_after": info.params_after, "latency_ms_before": info.latency_ms_before,
                     "latency_ms_after": info.latency_ms_after, "speedup_b1": info.speedup_b1,
                     "speedup_b64": info.speedup_b64,
                     "speedup_per_mac_reduction_b1": info.speedup_b1 / info.mac_reduction,
                     "speedup_per_mac_reduction_b64": info.speedup_b64 / info.mac_reduction,
                     "round_to": info.round_to, **train, "seconds": seconds})
        print(f"  {name:9s} {label:28s} MACs {info.mac_reduction:.2f}x  speedup b1 {info.speedup_b1:.2f}x  "
              f"b64 {info.speedup_b64:.2f}x  training b64 {train['train_speedup']:.2f}x", flush=True)
    return rows


def part_b(args: argparse.Namespace) -> dict[str, Any]:
    data = load_data(DataConfig(name="cifar10", root=args.data_root, batch_size=128), seed=0, channels_last=True)
    ctx = StepContext(device=torch.device("cpu"), data=data, channels_last=True, progress=make_progress(False))
    handle = model("resnet56", args.teacher)
    top1 = evaluate(handle.module.to(memory_format=torch.channels_last), data.val, data.num_classes)["top1"]
    info, _, curve, seconds = prune(handle, ctx, target_mac_reduction=2.0, importance=args.importance,
                                    round_to=args.round_to, finetune={"epochs": args.epochs, "lr": args.lr,
                                                                      "distill": True})
    return {"model": "resnet56 (akamaster, pretrained)", "importance": args.importance, "round_to": args.round_to,
            "mac_reduction": info.mac_reduction, "ratio": info.ratio, "params_before": info.params_before,
            "params_after": info.params_after, "speedup_b1": info.speedup_b1, "speedup_b64": info.speedup_b64,
            "top1_unpruned": top1, "top1_after_pruning": info.top1_before_finetune,
            "top1_per_epoch": [row.test_top1 for row in curve],
            "images_per_s": [row.images_per_s for row in curve], "epochs": args.epochs, "lr": args.lr,
            "seconds": seconds}


def part_c(quick: bool, round_tos: list[str]) -> list[dict[str, Any]]:
    from distillcli.compress.export import export_file
    from file_timing import ratio_spread, time_files
    from distillcli.measure import count_macs
    from distillcli.modelfile import file_header, load_model, save_model

    data = load_data(DataConfig(name="synthetic", num_classes=10, image_size=32, train_size=256, val_size=256),
                     seed=0)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("resnet20",) if quick else ("resnet56", "vgg16_bn"):
            handle = model(name)
            header = file_header(handle, class_names=data.class_names, input_shape=data.input_shape, data=data.spec)
            dense = save_model(Path(tmp) / f"{name}.pt", handle, header)
            eager, compiled = [("dense", dense, {})], [("dense .pt2", _program(dense, export_file, load_model), COMPILED)]
            for rt in round_tos:  # every variant timed in the same rounds as the dense files
                pruned = Path(tmp) / f"{name}-pruned-{rt}.pt"
                rt = f"auto ({resolve_round_to('auto', torch.device('cpu'))})" if rt == "auto" else rt
                subprocess.run([sys.executable, "-m", "distillcli", "prune", str(dense), "--sparsity", "0.5", "--out",
                                str(pruned), "--device", "cpu", "--round-to", rt.split()[0], "--quiet"], check=True)
                eager.append((rt, pruned, {}))
                compiled.append((rt, _program(pruned, export_file, load_model), COMPILED))
            timings = time_files(eager + compiled, 64, 3 if quick else 9, 5, torch.get_num_threads(),
                                 Path(tmp) / f"inductor-{name}", log=lambda text: print(f"  {name}: {text}", flush=True))
            macs = {path: count_macs(load_model(path).handle.module, data.input_shape) for _, path, _ in eager}
            for form, group in (("eager .pt", timings[:len(eager)]), ("compiled .pt2", timings[len(eager):])):
                before = group[0]
                for (rt, path, _), after in zip(eager[1:], group[1:]):
                    reduction = macs[dense] / macs[path]
                    speedup, low, high = ratio_spread(before, after)
                    rows.append({"model": name, "form": form, "round_to": rt, "mac_reduction": reduction,
                                 "ms_b64_dense": before.median_ms, "ms_b64_pruned": after.median_ms,
                                 "speedup_b64": speedup, "speedup_range": [low, high],
                                 "speedup_per_mac_reduction": speedup / reduction,
                                 "first_load_s": [before.first_load_s, after.first_load_s]})
    return rows


def _program(path: Path, export_file: Any, load_model: Any) -> Path:
    return export_file(load_model(path), "pt2", path.with_name(path.stem + "-program")).path


def print_tables(result: dict[str, Any]) -> None:
    if result.get("latency"):
        print("\n| model | pruning | MACs | MAC reduction | params | speedup b1 | speedup b64 | speedup/MACred b1 | b64 "
              "| training speed-up b64 (range) |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for r in result["latency"]:
            low, high = r["train_speedup_range"]
            print(f"| {r['model']} | {r['pruning']} | {r['macs_before'] / 1e6:.1f}M -> {r['macs_after'] / 1e6:.1f}M | "
                  f"{r['mac_reduction']:.2f}x | {r['params_before'] / 1e6:.2f}M -> {r['params_after'] / 1e6:.2f}M | "
                  f"{r['speedup_b1']:.2f}x | {r['speedup_b64']:.2f}x | {r['speedup_per_mac_reduction_b1']:.2f} | "
                  f"{r['speedup_per_mac_reduction_b64']:.2f} | {r['train_speedup']:.2f}x ({low:.2f}-{high:.2f}) |")
    if result.get("files"):
        print("\n`distill prune MODEL.pt --sparsity 0.5`, each file loaded in a fresh process, batch 64:\n")
        print("| model | form | round_to | MAC reduction | dense ms | pruned ms | speed-up (range) "
              "| speed-up / MAC reduction |")
        print("|---|---|---|---|---|---|---|---|")
        for r in result["files"]:
            low, high = r["speedup_range"]
            print(f"| {r['model']} | {r['form']} | {r['round_to']} | {r['mac_reduction']:.2f}x | {r['ms_b64_dense']:.1f} | "
                  f"{r['ms_b64_pruned']:.1f} | "
                  f"{r['speedup_b64']:.2f}x ({low:.2f}-{high:.2f}) | {r['speedup_per_mac_reduction']:.2f} |")
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
    p.add_argument("--round-to", default="auto", help="channel counts a multiple of this (auto: the prune step's "
                   "default for the device; 0: no rounding)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's choice)")
    p.add_argument("--parts", default="abc", help="a (speed in this process), b (accuracy), c (files in fresh "
                   "processes), any combination")
    p.add_argument("--c-round-to", default="auto", help="part c: the --round-to values pruned with, comma-separated "
                   "(e.g. auto,16); every variant is timed in the same rounds")
    p.add_argument("--quick", action="store_true", help="smoke run: ResNet-20 only, few repeats, parts a and c")
    p.add_argument("--out", type=Path, default=Path("bench_results/prune.json"))
    args = p.parse_args()
    args.round_to = args.round_to if args.round_to == "auto" else (int(args.round_to) or None)
    if args.quick:
        args.parts = args.parts if args.parts != "abc" else "ac"
    if args.threads:
        torch.set_num_threads(args.threads)
    result: dict[str, Any] = {"threads": torch.get_num_threads(), "round_to": args.round_to, "torch": torch.__version__,
                              "machine": this_machine().to_dict()}
    print(f"machine: {this_machine().describe()}", flush=True)
    if "a" in args.parts:
        print("part a: inference and training speed (random init, synthetic 32x32 inputs, channels_last)", flush=True)
        synthetic = load_data(DataConfig(name="synthetic", num_classes=10, image_size=32, train_size=64, val_size=64),
                              seed=0, channels_last=True)
        result["latency"] = part_a(StepContext(device=torch.device("cpu"), data=synthetic, channels_last=True),
                                   args.round_to, args.quick)
    if "b" in args.parts:
        print("part b: accuracy (pretrained ResNet-56, CIFAR-10)", flush=True)
        result["accuracy"] = part_b(args)
    if "c" in args.parts:
        print("part c: `distill prune --sparsity 0.5`, files timed in fresh processes", flush=True)
        result["files"] = part_c(args.quick, args.c_round_to.split(","))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print_tables(result)
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
