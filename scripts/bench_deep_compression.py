"""Benchmark: Deep Compression (Han, Mao, Dally 2016) on CIFAR-10: prune -> share -> Huffman.

    python scripts/bench_deep_compression.py --data-root ../shared/data/cifar10 \
        --weights ../shared/weights/cifar10/akamaster_pytorch_resnet_cifar10/resnet56-4bfd9763.th \
        --out bench_results/deep_compression.json

Subject: the pretrained ResNet-56 (default), or --checkpoint, a distillcli model file (e.g. a
trained VGG16-BN). Through the real steps, as a `prune -> share` recipe runs them:
  1. prune (unstructured magnitude, per layer) to --sparsity, fine-tuned --prune-epochs
     distilling from the unpruned model;
  2. share: k-means per layer to --clusters values (linear initialisation), then centroid
     fine-tuning for --share-epochs (gradients summed per cluster), distilling likewise;
  3. Huffman coding of codes and sparse indices (counted, see compress.sharing.size).
Prints top-1 after each stage and the stored size at each stage against fp32, with the
per-layer sizes in the JSON. The paper's anchor: 49x for VGG16 on ImageNet (35x AlexNet),
no accuracy lost. Fine-tunes use the first --train-subset training images (CPU time).
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path
from typing import Any

import torch

from distillcli.facts import ShareFacts
from distillcli.modelfile import load_model
from distillcli.data import load_data
from distillcli.data.config import DataConfig
from distillcli.measure import evaluate
from distillcli.models.handle import ModelHandle
from distillcli.progress import make_progress
from distillcli.steps import STEPS, StepContext
from distillcli.steps.prune import PruneConfig
from distillcli.steps.share import ShareConfig

from published import published_model



def subject(args: argparse.Namespace) -> ModelHandle:
    if args.checkpoint:
        return load_model(args.checkpoint).handle
    return published_model("resnet56", args.weights)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default="../shared/data/cifar10")
    parser.add_argument("--weights", default="../shared/weights/cifar10/akamaster_pytorch_resnet_cifar10/"
                                             "resnet56-4bfd9763.th")
    parser.add_argument("--checkpoint", help="a distillcli model file to compress instead (e.g. a VGG16-BN)")
    parser.add_argument("--sparsity", type=float, default=0.7, help="fraction of conv/linear weights pruned")
    parser.add_argument("--prune-epochs", type=int, default=1)
    parser.add_argument("--prune-lr", type=float, default=0.01)
    parser.add_argument("--clusters", type=int, default=16, help="shared values per conv layer (16: 4 bits)")
    parser.add_argument("--linear-clusters", type=int, default=32, help="shared values per linear layer")
    parser.add_argument("--share-epochs", type=int, default=1)
    parser.add_argument("--share-lr", type=float, default=0.0001)
    parser.add_argument("--centroid-grad", choices=("sum", "mean"), default="sum")
    parser.add_argument("--train-subset", type=int, default=10000, help="training images used by the fine-tunes")
    parser.add_argument("--val-subset", type=int, help="evaluate on the first N test images (default: all)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="bench_results/deep_compression.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    t_start = time.perf_counter()
    data = load_data(DataConfig(name="cifar10", root=args.data_root, batch_size=128, train_subset=args.train_subset,
                                val_subset=args.val_subset), seed=0, channels_last=True)
    ctx = StepContext(device=torch.device("cpu"), data=data, channels_last=True, progress=make_progress(False))
    handle = subject(args)
    handle.module = handle.module.to(memory_format=torch.channels_last)

    def top1(h: ModelHandle) -> float:
        return evaluate(h.module, data.val, data.num_classes)["top1"]

    stages: list[dict[str, Any]] = [{"stage": "fp32", "top1": top1(handle)}]
    print(f"fp32 top-1 {stages[0]['top1']:.2f}", flush=True)
    pruned = STEPS.get("prune").run(handle, ctx, PruneConfig(
        method="unstructured", sparsity=args.sparsity,
        finetune={"epochs": args.prune_epochs, "lr": args.prune_lr, "distill": True})).model
    stages.append({"stage": f"pruned {100 * args.sparsity:.0f} % + {args.prune_epochs} epoch(s)", "top1": top1(pruned)})
    clustered = STEPS.get("share").run(copy.deepcopy(pruned), ctx, ShareConfig(
        clusters=args.clusters, linear_clusters=args.linear_clusters, epochs=0))
    stages.append({"stage": f"+ shared ({args.clusters} values), no fine-tune", "top1": top1(clustered.model)})
    shared = STEPS.get("share").run(pruned, ctx, ShareConfig(
        clusters=args.clusters, linear_clusters=args.linear_clusters, epochs=args.share_epochs, lr=args.share_lr,
        centroid_grad=args.centroid_grad))
    stages.append({"stage": f"+ centroids fine-tuned {args.share_epochs} epoch(s)", "top1": top1(shared.model)})
    info = shared.info
    assert isinstance(info, ShareFacts)
    sizes = [("fp32", info.fp32_bytes, 1.0), ("pruned (sparse, fp32 values)", info.pruned_bytes, info.pruned_ratio),
             ("+ shared (codes + codebook)", info.shared_bytes, info.shared_ratio),
             ("+ Huffman", info.huffman_bytes, info.huffman_ratio)]
    print(f"\nDeep Compression of {handle.arch.name} on CIFAR-10 ({data.val.num_samples} test images, fine-tunes on "
          f"{data.train.num_samples} training images)\n")
    print("| stage | top-1 % | Δ top-1 |\n|---|---|---|")
    for s in stages:
        print(f"| {s['stage']} | {s['top1']:.2f} | {s['top1'] - stages[0]['top1']:+.2f} |")
    print("\n| storage | bytes | ratio |\n|---|---|---|")
    for name, size, ratio in sizes:
        print(f"| {name} | {size:,} | {ratio:.1f}x |")
    print(f"\nweight sparsity {100 * info.shared_weight_sparsity:.1f} %; anchor: Deep Compression 49x on "
          f"VGG16 / ImageNet, 35x on AlexNet")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"model": handle.arch.name, "stages": stages, "sizes": info.model_dump(mode="json"),
                               "args": vars(args),
                               "seconds": time.perf_counter() - t_start}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
