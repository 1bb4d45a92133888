"""Benchmark: a user's own data and timm models, end to end, every file measured in a fresh process.

    python scripts/bench_byo.py --cifar ../shared/data/cifar10 --size 64 --per-class 500 --val-per-class 100 \
        --teacher-epochs 15 --student-epochs 15 --out bench_results/byo

1. An ImageFolder of real photos made offline: CIFAR-10 images upscaled to ``--size`` px as PNG files
   (root/train/<class>/*.png, root/val/<class>/*.png), as a user's folder would be.
2. A recipe run with `distill run` (a subprocess, as a user runs it): a timm ResNet-18 teacher trained
   from scratch, distilled into a timm MobileNetV3-small, then pruned to 2x fewer MACs with a KD
   fine-tune, then int8. A second recipe distils the same teacher (its model file) into a user's own
   network (``py:mynet.py:MyNet``, run with --trust-code), then prunes and quantizes it the same way.
3. Each model file loaded by `distill eval --json` in a fresh process, the files alternated over
   ``--rounds`` rounds: top-1 on the val folder, parameters, MACs, file size and batch-1 / batch-64
   latency (median and range of the rounds: ratios between files of one run, never across machines).
4. The same files timed at ``--latency-size`` px (224: the size these models meet in use), again in
   fresh processes and alternated. Eager files take any input size; an int8 program is fixed to the
   size it was made at, so the pruned model is quantized once more at that size (calibrated on the
   val images resized to it) and that file is timed. Accuracy at that size is not a measure here.
Prints a table, writes ``results.json``; the machine's ISA goes with every figure (`distill doctor`).
"""

from __future__ import annotations

import argparse
import json
import pickle
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from PIL import Image

from file_timing import distill_eval


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


USER_MODEL = '''"""A user's own network: a plain conv stack, nothing distill knows about."""
from torch import nn


class MyNet(nn.Module):
    def __init__(self, num_classes: int = 10, width: int = 32) -> None:
        super().__init__()
        layers, c = [], 3
        for out in (width, 2 * width, 4 * width, 4 * width):
            layers += [nn.Conv2d(c, out, 3, padding=1, bias=False), nn.BatchNorm2d(out), nn.ReLU(), nn.MaxPool2d(2)]
            c = out
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(c, num_classes)

    def forward(self, x):
        return self.head(self.features(x).mean((2, 3)))
'''


def recipe(name: str, root: Path, args: argparse.Namespace, teacher: dict[str, Any], student: str,
           train_teacher: bool) -> dict[str, Any]:
    steps: list[dict[str, Any]] = [{"train": {"model": "teacher", "epochs": args.teacher_epochs, "lr": 0.1}}]
    steps = (steps if train_teacher else []) + [
        {"distill": {"epochs": args.student_epochs, "lr": 0.05}},
        {"prune": {"target_mac_reduction": 2.0, "finetune": {"epochs": args.finetune_epochs}}},
        {"quantize": {"method": "static"}},
    ]
    return {"name": name, "seed": 0, "device": "cpu",
            "data": {"name": "imagefolder", "root": str(root.resolve()), "image_size": args.size, "batch_size": 64},
            "teacher": teacher, "student": {"arch": student}, "steps": steps}


def run_recipe(raw: dict[str, Any], out: Path, threads: int, *extra: str) -> Path:
    path = out / f"{raw['name']}.yaml"
    path.write_text(yaml.safe_dump(raw))
    run = out / raw["name"]
    interrupted = (run / "checkpoints").is_dir() and not (run / "metrics.json").exists()
    where = ["--resume", str(run)] if interrupted else ["--out", str(run), "--force"]  # go on where it stopped
    subprocess.run([sys.executable, "-m", "distillcli", "run", str(path), *where, "--quiet", "--threads", str(threads),
                    *extra], check=True)
    return run


# Run in a fresh process, through the Python API with the data's image_size replaced: with an output
# path, the model quantized to int8 at that size (calibrated on the resized images) and saved there;
# without, the model measured at that size, printed as JSON.
AT_SIZE = """
import json, sys
from distillcli import api
path, size, threads, trust, int8_out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1", sys.argv[5]
at = dict(image_size=size, threads=threads, trust_code=trust, device="cpu", latency=not int8_out, val_subset=64)
run = api.quantize(path, {"method": "static"}, out=int8_out, **at) if int8_out else api.evaluate(path, **at)
print(json.dumps(run.after.model_dump()))
"""


def at(path: Path, size: int, threads: int, trust: bool, int8_out: Path | None = None) -> Any:
    """``path`` measured at ``size`` px in a fresh process; or, with ``int8_out``, made int8 at that size there."""
    proc = subprocess.run([sys.executable, "-c", AT_SIZE, str(path), str(size), str(threads), "1" if trust else "0",
                           str(int8_out or "")], capture_output=True, text=True, check=True)
    return int8_out if int8_out else json.loads(proc.stdout.strip().splitlines()[-1])


def measure(files: dict[str, Any], rounds: int, run: Any) -> dict[str, Any]:
    """Every file measured by ``run(file)`` in a fresh process, the files alternated round by round:
    the accuracy and sizes of the first round, each batch size's latency as the median of the rounds
    and their range (ratios between files hold within this run only)."""
    seen: dict[str, list[dict[str, Any]]] = {label: [] for label in files}
    for _ in range(rounds):
        for label, file in files.items():
            seen[label].append(run(file))
    rows = {}
    for label, runs in seen.items():
        row = dict(runs[0])
        for batch in row.get("latency_ms") or {}:
            times = sorted(r["latency_ms"][batch] for r in runs)
            row["latency_ms"][batch] = statistics.median(times)
            row.setdefault("latency_range_ms", {})[batch] = [times[0], times[-1]]
        rows[label] = row
    return rows


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
    parser.add_argument("--latency-size", type=int, default=224, help="part 4: the input size of the second timing")
    parser.add_argument("--rounds", type=int, default=3, help="fresh-process measurements of every file, alternated")
    parser.add_argument("--skip-run", action="store_true", help="measure the files an earlier run left in --out")
    parser.add_argument("--skip-measure", action="store_true", help="only run the recipes (measure later, quietly)")
    parser.add_argument("--out", type=Path, default=Path("bench_results/byo"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    folder = args.out / "images"
    if not folder.exists():
        make_folder(args.cifar, folder, args.size, args.per_class, args.val_per_class)
    (args.out / "mynet.py").write_text(USER_MODEL)
    timm_run, py_run = args.out / "byo", args.out / "byo-py"
    if not args.skip_run:
        run_recipe(recipe("byo", folder, args, {"arch": "timm:resnet18"}, "timm:mobilenetv3_small_100", True),
                   args.out, args.threads)
        teacher = {"arch": "timm:resnet18", "checkpoint": str((timm_run / "models" / "teacher.pt").resolve())}
        run_recipe(recipe("byo-py", folder, args, teacher, f"py:{(args.out / 'mynet.py').resolve()}:MyNet", False),
                   args.out, args.threads, "--trust-code")
    if args.skip_measure:
        return
    files = {"teacher (timm resnet18)": (timm_run / "models" / "teacher.pt", ())}
    made_from: dict[Path, Path] = {}  # an int8 file -> the float file it was quantized from
    for run, student, extra in ((timm_run, "timm mobilenetv3_small_100", ()), (py_run, "py: MyNet", ("--trust-code",))):
        labels = {"distill": f"student ({student}), KD", "prune": f"  {student} pruned 2x MACs + KD fine-tune",
                  "quantize": f"  {student} pruned + int8"}
        before = None
        for step in json.loads((run / "metrics.json").read_text())["steps"]:
            if step["kind"] in labels and step["target"] == "student":
                path = run / step["model_file"]
                files[labels[step["kind"]]] = (path, extra)
                if step["kind"] == "quantize" and before is not None:
                    made_from[path] = before
                before = path
    machine = json.loads(subprocess.run([sys.executable, "-m", "distillcli", "doctor", "--json"], capture_output=True,
                                        text=True, check=True).stdout)
    rows = measure(files, args.rounds, lambda file: distill_eval(file[0], "--threads", str(args.threads), *file[1]))
    size = args.latency_size
    at_size = {}
    for label, (path, extra) in files.items():
        if path in made_from:  # an int8 program is fixed to its input size: quantized again at this size
            path = at(made_from[path], size, args.threads, bool(extra),
                      args.out / f"{path.parent.parent.name}-int8-{size}px.pt2")
        at_size[label] = (path, extra)
    big = measure(at_size, args.rounds, lambda file: at(file[0], size, args.threads, bool(file[1])))
    head = f"{'file':42} {'top-1':>7} {'params':>9} {'MACs':>11} {'KiB':>8} {'b1 ms':>7} {'b64 ms':>7}"
    print(head + f" {f'b1@{size}':>8} {f'b64@{size}':>9}")
    for label, m in rows.items():
        lat, lat_big = m.get("latency_ms") or {}, big[label].get("latency_ms") or {}
        print(f"{label:42} {m['top1']:7.2f} {m['params'] or 0:9d} {m['macs'] or 0:11d} "
              f"{(m['file_bytes'] or 0) / 1024:8.0f} {lat.get('1', float('nan')):7.2f} {lat.get('64', float('nan')):7.2f}"
              f" {lat_big.get('1', float('nan')):8.2f} {lat_big.get('64', float('nan')):9.2f}")
    (args.out / "results.json").write_text(json.dumps({"machine": machine, "files": rows, f"at_{size}px": big,
                                                      "args": vars(args)}, indent=2, default=str))


if __name__ == "__main__":
    main()
