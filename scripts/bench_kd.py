"""Benchmark: ResNet-20 trained alone vs distilled from a pretrained ResNet-56 on CIFAR-10,
and the pipeline's KD loop overhead against a minimal hand-written PyTorch KD loop.

    python scripts/bench_kd.py --data-root ../shared/data/cifar10 \
        --teacher ../shared/weights/cifar10/akamaster_pytorch_resnet_cifar10/resnet56-4bfd9763.th \
        --epochs 1 --out bench_results/kd.json

Part 1 runs two recipes through the real pipeline (same epochs, seed and data order) and
reports top-1 and images/s. Part 2 feeds the same pre-made batches to the pipeline's
Trainer and to a bare loop, alternating them, and reports the median throughput of each.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from distillcli.allocator import keep_freed_memory
from distillcli.modelfile.foreign import load_foreign_weights
from distillcli.data import load_data
from distillcli.data.bundle import DataBundle
from distillcli.data.config import DataConfig
from distillcli.losses.kd import KnowledgeDistillation
from distillcli.models.build import build_model, place
from distillcli.models.handle import ArchSpec
from distillcli.pipeline import Pipeline
from distillcli.progress import make_progress
from distillcli.recipe import validate_raw
from distillcli.record import teacher_share
from distillcli.training.optim import OptimConfig
from distillcli.training.trainer import Trainer

IMAGENET = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}


def run_recipes(args: argparse.Namespace, out_dir: Path) -> list[dict]:
    data = {"name": "cifar10", "root": args.data_root, "batch_size": 128}
    if args.train_subset:
        data["train_subset"] = args.train_subset
    if args.val_subset:
        data["val_subset"] = args.val_subset
    common = {"seed": 0, "device": args.device, "data": data, "student": {"arch": "resnet20"},
              "report": {"latency_repeats": 20}}
    opt = {"epochs": args.epochs, "lr": 0.1, "weight_decay": 5e-4, "schedule": "cosine", "precision": args.precision}
    recipes = {
        "resnet20 alone": {**common, "name": "bench-alone", "steps": [{"train": opt}]},
        "resnet20 KD from resnet56": {
            **common, "name": "bench-kd",
            "teacher": {"arch": "resnet56", "checkpoint": args.teacher, "strip_prefix": "module.", **IMAGENET},
            "steps": [{"distill": {**opt, "temperature": 4, "alpha": 0.9}}]},
    }
    rows = []
    for label, raw in recipes.items():
        result = Pipeline(validate_raw(raw), make_progress(quiet=False), out=out_dir / raw["name"]).run()
        step, base = result.record.steps[-1], result.record.baseline
        rows.append({"run": label, "epochs": args.epochs, "top1": step.measures.top1,
                     "images_per_s": statistics.mean(r.images_per_s for r in step.curve),
                     "teacher_share": teacher_share(step.curve), "precision": step.curve[-1].precision,
                     "teacher_top1": base.measures.top1 if base is not None and base.source == "teacher" else None,
                     "seconds": step.seconds})
    return rows


class _Replay:
    """A BatchLoader over pre-made batches: both loops see exactly the same tensors."""

    def __init__(self, batches: list) -> None:
        self.batches = batches
        self.num_samples = sum(b[1].numel() for b in batches)

    def __iter__(self):
        return iter(self.batches)

    def iter_from(self, batch: int):
        return iter(self.batches[batch:])

    def __len__(self) -> int:
        return len(self.batches)

    def set_epoch(self, epoch: int) -> None:
        pass


def _models(args: argparse.Namespace, device: torch.device):
    teacher = build_model(ArchSpec("resnet56", 10, 3, **IMAGENET))
    load_foreign_weights(teacher, args.teacher, strip_prefix="module.")
    student = build_model(ArchSpec("resnet20", 10, 3, [0.49, 0.48, 0.45], [0.25, 0.24, 0.26]))
    return place(teacher.eval(), device, True), place(student, device, True)


def hand_loop(teacher, student, batches, lr: float) -> float:
    """The smallest honest KD loop: teacher forward without grad, student step."""
    opt = torch.optim.SGD(student.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
    student.train()
    t0 = time.perf_counter()
    for x, y, _ in batches:
        with torch.no_grad():
            t = teacher(x)
        s = student(x)
        soft = F.kl_div(F.log_softmax(s / 4, 1), F.log_softmax(t / 4, 1), reduction="batchmean", log_target=True) * 16
        loss = 0.1 * F.cross_entropy(s, y) + 0.9 * soft
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return sum(b[1].numel() for b in batches) / (time.perf_counter() - t0)


def pipeline_loop(teacher, student, batches, bundle: DataBundle, lr: float) -> float:
    """The pipeline's Trainer + KD objective on the same batches (one epoch, no eval counted)."""
    replay = copy.copy(bundle)
    replay.train = _Replay(batches)
    replay.val = _Replay([])
    trainer = Trainer(student, KnowledgeDistillation(teacher, 4.0, 0.9), replay,
                      OptimConfig(epochs=1, lr=lr, schedule="constant"))
    row = trainer.fit()[0]
    return row.images_per_s


def overhead(args: argparse.Namespace) -> dict:
    device = torch.device(args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu"))
    cfg = DataConfig(name="cifar10", root=args.data_root, batch_size=128, train_subset=128 * args.batches)
    bundle = load_data(cfg, device=device, seed=0, channels_last=True)
    batches = list(bundle.train)
    teacher, student = _models(args, device)
    hand_loop(teacher, copy.deepcopy(student), batches[:3], 0.01)  # warm-up both paths
    pipeline_loop(teacher, copy.deepcopy(student), batches[:3], bundle, 0.01)
    hand, ours = [], []
    for _ in range(args.repeats):  # alternate so that machine noise hits both alike
        hand.append(hand_loop(teacher, copy.deepcopy(student), batches, 0.01))
        ours.append(pipeline_loop(teacher, copy.deepcopy(student), batches, bundle, 0.01))
    h, o = statistics.median(hand), statistics.median(ours)
    return {"batches": len(batches), "repeats": args.repeats, "hand_images_per_s": h,
            "pipeline_images_per_s": o, "overhead_percent": 100.0 * (h / o - 1.0)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", default="../shared/data/cifar10")
    p.add_argument("--teacher", default="../shared/weights/cifar10/akamaster_pytorch_resnet_cifar10/resnet56-4bfd9763.th")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--train-subset", type=int, default=None, help="use only the first N training images")
    p.add_argument("--val-subset", type=int, default=None, help="measure on the first N test images only")
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", default="auto", help="part 1's training loops: auto | fp32 | bf16 | fp16 "
                   "(part 2 compares fp32 loops)")
    p.add_argument("--batches", type=int, default=40, help="batches per throughput measurement")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--skip-accuracy", action="store_true", help="only measure the loop overhead")
    p.add_argument("--out", default="bench_results/kd.json")
    args = p.parse_args()
    keep_freed_memory()  # as the `distill` command does, for both loops alike
    out = Path(args.out)
    result = {"overhead": overhead(args)}
    if not args.skip_accuracy:
        result["runs"] = run_recipes(args, out.parent / "kd_runs")
    o = result["overhead"]
    print(f"\nKD loop throughput on {o['batches']} identical batches (median of {o['repeats']}):")
    print("| loop | images/s |\n|---|---|")
    print(f"| hand-written PyTorch | {o['hand_images_per_s']:.0f} |")
    print(f"| distillcli Trainer + KD objective | {o['pipeline_images_per_s']:.0f} |")
    print(f"overhead: {o['overhead_percent']:+.1f} % (target <= 5 %)")
    if "runs" in result:
        print("\n| run | epochs | precision | top-1 % | images/s | teacher's share of the time | teacher top-1 % |\n"
              "|---|---|---|---|---|---|---|")
        for r in result["runs"]:
            t = "-" if r["teacher_top1"] is None else f"{r['teacher_top1']:.2f}"
            share = "-" if r["teacher_share"] is None else f"{100 * r['teacher_share']:.0f} %"
            print(f"| {r['run']} | {r['epochs']} | {r['precision']} | {r['top1']:.2f} | {r['images_per_s']:.0f} | "
                  f"{share} | {t} |")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
