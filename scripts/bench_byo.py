"""Benchmark: a user's own data and timm models, end to end, every file measured in a fresh process.

    python scripts/bench_byo.py --cifar ../shared/data/cifar10 --size 64 --per-class 500 --val-per-class 100 \
        --teacher-epochs 15 --student-epochs 15 --out bench_results/byo

1. An ImageFolder of real photos made offline: CIFAR-10 images upscaled to ``--size`` px as PNG files
   (root/train/<class>/*.png, root/val/<class>/*.png), as a user's folder would be.
2. A recipe run with `distill run` (a subprocess, as a user runs it): a timm ResNet-18 teacher trained
   from scratch, distilled into a timm MobileNetV3-small, then pruned to 2x fewer MACs with a KD
   fine-tune, then int8.
3. Each model file (teacher, student, pruned, int8) loaded by `distill eval --json` in a fresh process:
   top-1 on the val folder, parameters, MACs, file size and batch-1 / batch-64 latency (medians of
   one run each: ratios between files of one run, never across runs or machines).
Prints a table, writes ``results.json``; the machine's ISA goes with every figure (`distill doctor`).
"""

from __future__ import annotations

import argparse
import json
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from PIL import Image


def make_folder(cifar: Path, root: Path, size: int, per_class: int, val_per_class: int) -> list[str]:
    """CIFAR-10's first images of each class, upscaled (bicubic) to ``size`` px, as PNG files."""
    base = cifar / "cifar-10-batches-py"
    classes = [n.decode() for n in pickle.loads((base / "batches.meta").read_bytes(), encoding="bytes")[b"label_names"]]
    for split, files, limit in (("train", [f"data_batch_{i}" for i in range(1, 6)], per_class),
                                ("val", ["test_batch"], val_per_class)):
        counts = dict.fromkeys(range(10), 0)
        for name in files:
            batch = pickle.loads((base / name).read_bytes(), encoding="bytes")
            images = batch[b"data"].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
            for i, (image, label) in enumerate(zip(images, batch[b"labels"])):
                if counts[label] >= limit:
                    continue
                folder = root / split / classes[label]
                folder.mkdir(parents=True, exist_ok=True)
                Image.fromarray(np.ascontiguousarray(image)).resize((size, size), Image.BICUBIC).save(
                    folder / f"{name}-{i}.png")
                counts[label] += 1
    return classes


def recipe(root: Path, size: int, args: argparse.Namespace) -> dict[str, Any]:
    return {
        "name": "byo", "seed": 0, "device": "cpu",
        "data": {"name": "imagefolder", "root": str(root), "image_size": size, "batch_size": 64},
        "teacher": {"arch": "timm:resnet18"},
        "student": {"arch": "timm:mobilenetv3_small_100"},
        "steps": [
            {"train": {"model": "teacher", "epochs": args.teacher_epochs, "lr": 0.1}},
            {"distill": {"epochs": args.student_epochs, "lr": 0.05}},
            {"prune": {"target_mac_reduction": 2.0, "finetune": {"epochs": args.finetune_epochs}}},
            {"quantize": {"method": "static", "skip": ["net.classifier"]}},
        ],
    }


def evaluate(path: Path, threads: int) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, "-m", "distillcli", "eval", str(path), "--json", "--threads", str(threads)],
                          capture_output=True, text=True, check=True)
    return json.loads(proc.stdout)["measures"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cifar", type=Path, default=Path("../shared/data/cifar10"))
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--per-class", type=int, default=500)
    parser.add_argument("--val-per-class", type=int, default=100)
    parser.add_argument("--teacher-epochs", type=int, default=15)
    parser.add_argument("--student-epochs", type=int, default=15)
    parser.add_argument("--finetune-epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("bench_results/byo"))
    args = parser.parse_args()
    folder = args.out / "images"
    if not folder.exists():
        make_folder(args.cifar, folder, args.size, args.per_class, args.val_per_class)
    path = args.out / "byo.yaml"
    path.write_text(yaml.safe_dump(recipe(folder, args.size, args)))
    run = args.out / "run"
    subprocess.run([sys.executable, "-m", "distillcli", "run", str(path), "--out", str(run), "--force", "--quiet",
                    "--threads", str(args.threads)], check=True)
    machine = json.loads(subprocess.run([sys.executable, "-m", "distillcli", "doctor", "--json"], capture_output=True,
                                        text=True, check=True).stdout)
    files = {"teacher (timm resnet18)": run / "models" / "teacher.pt",
             "student (timm mobilenetv3_small_100, KD)": run / "models" / "01-distill-student.pt",
             "pruned 2x MACs + KD fine-tune": run / "models" / "02-prune-student.pt",
             "pruned + int8": run / "models" / "student.pt2"}
    rows = {label: evaluate(file, args.threads) for label, file in files.items()}
    print(f"{'file':42} {'top-1':>7} {'params':>9} {'MACs':>11} {'KiB':>8} {'b1 ms':>7} {'b64 ms':>7}")
    for label, m in rows.items():
        lat = m.get("latency_ms") or {}
        print(f"{label:42} {m['top1']:7.2f} {m['params'] or 0:9d} {m['macs'] or 0:11d} "
              f"{(m['file_bytes'] or 0) / 1024:8.0f} {lat.get('1', float('nan')):7.2f} {lat.get('64', float('nan')):7.2f}")
    (args.out / "results.json").write_text(json.dumps({"machine": machine, "files": rows, "args": vars(args)},
                                                      indent=2, default=str))


if __name__ == "__main__":
    main()
