"""Benchmark: ResNet-20 trained alone vs distilled from a pretrained ResNet-56 on CIFAR-10 by
each method (KD, DKD, DIST, attention transfer + KD, KD from a warm teacher-output store), and
the pipeline's KD loop overhead against a minimal hand-written PyTorch KD loop.

    python scripts/bench_kd.py --data-root ../shared/data/cifar10 \
        --teacher ../shared/weights/cifar10/akamaster_pytorch_resnet_cifar10/resnet56-4bfd9763.th \
        --epochs 15 --out bench_results/kd.json

Part 1 runs one recipe per row through the real pipeline (same epochs, seed, data order and
augmentation) and reports the final model's top-1 on the test set (nothing is selected on it),
the median images/s and minutes per epoch, and the teacher's share of the time; each row's saved
model is then re-measured by `distill eval` in its own process. `--seeds N` runs every row with
seeds 0..N-1 and adds a table of mean ± std and the gain over the student alone, seed by seed; a
second teacher's rows (`--teacher-file`, or `--train-teacher ARCH`: trained here by distill first)
take the alone rows of the first result with `--alone-from`, since the student alone does not
depend on the teacher. After each row the rows so
far are written to OUT's .partial.json; `--reuse` that file (kept, e.g. under docs/data/) and a
later session runs only the rows still missing. Part 2 feeds
the same pre-made batches to the pipeline's Trainer and to a bare loop, alternating them, and
reports the median throughput of each. Part 3 (with --torchdistill-python, the interpreter of
an environment holding torchdistill 1.1.5) times the same KD job, data loading included, run
by distillcli and by torchdistill (scripts/torchdistill_kd.py, a fresh process each), alternated.
"""

from __future__ import annotations

import argparse
import copy
import json
import shutil
import statistics
import subprocess
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from distillcli.allocator import keep_freed_memory
from distillcli.data import load_data
from distillcli.data.bundle import DataBundle
from distillcli.data.config import DataConfig
from distillcli.losses import KDOptions, make_objective
from distillcli.losses.specs import parse_loss
from distillcli.models.build import build_model, place
from distillcli.models.handle import ArchSpec
from distillcli.engine.pipeline import Pipeline
from distillcli.progress import make_progress
from distillcli.recipe import validate_raw
from distillcli.record import teacher_share
from distillcli.training.optim import OptimConfig
from distillcli.training.trainer import Trainer

from file_timing import distill_eval
from published import IMAGENET, published_model



# Every row trains the same ResNet-20 with the same seed, data order, augmentation and cosine
# schedule; only the objective (and whether the teacher's outputs come from the store) differ.
# The kd rows use the shipped T and alpha unless --kd says otherwise.
# Rows run in this order so that the DKD row fills a fresh store that later rows read.
ROWS: dict[str, tuple[dict | None, str]] = {
    "alone": (None, "-"),
    "KD": ({"teacher_cache": "off"}, "run every batch"),
    "DKD": ({"loss": "dkd", "teacher_cache": "auto"}, "run every batch, stored"),
    "KD, warm store": ({"teacher_cache": "required"}, "read from the store"),
    "DIST": ({"loss": "dist", "teacher_cache": "auto"}, "read from the store"),
    "AT + KD": ({"teacher_cache": "auto",
                 # the stages both share: ResNet-56 and ResNet-20 layer1-3; a VGG's ReLUs before its pools
                 "loss": ["kd", {"at": {"teacher_layers": "stages", "student_layers": "stages"}}]},
                "run every batch (features)"),
}


TERM_KEYS = {"T": "temperature"}


def parse_candidate(text: str) -> dict[str, float]:
    """``"beta=1 gamma=1 T=4"`` -> ``{"beta": 1.0, "gamma": 1.0, "temperature": 4.0}``."""
    pairs = (part.split("=", 1) for part in text.split())
    return {TERM_KEYS.get(k, k): float(v) for k, v in pairs}


# --train-teacher's schedule: the teacher step of recipes/vgg16_cifar10_cpu.yaml, what a user
# training a teacher at the CPU budget runs
TEACHER_TRAINING = {"lr": 0.05, "weight_decay": 5e-4, "schedule": "cosine", "warmup_epochs": 1}


def _teacher(args: argparse.Namespace) -> dict:
    """The published ResNet-56 (a DataParallel state dict, ImageNet mean/std), or a distill model file."""
    if args.teacher_file:
        return {"checkpoint": args.teacher_file}
    return {"arch": "resnet56", "checkpoint": args.teacher, "strip_prefix": "module.", **IMAGENET}


def _data(args: argparse.Namespace) -> dict:
    data = {"name": "cifar10", "root": args.data_root, "batch_size": 128}
    if args.train_subset:
        data["train_subset"] = args.train_subset
    if args.val_subset:
        data["val_subset"] = args.val_subset
    return data


def train_teacher(args: argparse.Namespace, out_dir: Path) -> dict:
    """--train-teacher: the teacher trained by distill on the rows' training images (seed 0, the
    final model). Training is deterministic on one ISA, so a later session retrains the same file;
    its top-1, recorded with the rows, is the check. A finished run is reused, a stopped one resumed."""
    raw = {"name": f"teacher-{args.train_teacher}", "seed": 0, "device": args.device, "data": _data(args),
           "teacher": {"arch": args.train_teacher}, "student": {"arch": "resnet20"},
           "steps": [{"train": {"model": "teacher", "epochs": args.teacher_epochs, "precision": args.precision,
                                **TEACHER_TRAINING}}]}
    run_dir = out_dir / raw["name"]
    result = Pipeline(validate_raw(raw), make_progress(quiet=False), out=run_dir,
                      resume=(run_dir / "checkpoints").is_dir()).run()
    step = result.record.steps[-1]
    model_file = str(run_dir / (step.model_file or ""))
    return {"top1": step.measures.top1, "top1_fresh": fresh_top1(args, model_file), "model_file": model_file}


def _recipe(args: argparse.Namespace, label: str, objective: dict | None, cache_dir: Path, seed: int = 0) -> dict:
    data = _data(args)
    opt = {"epochs": args.epochs, "lr": 0.1, "weight_decay": 5e-4, "schedule": "cosine", "precision": args.precision}
    name = "bench-" + "".join(c if c.isalnum() else "-" for c in label.lower()).strip("-") + (f"-s{seed}" if seed else "")
    raw = {"name": name, "seed": seed, "device": args.device, "data": data, "student": {"arch": "resnet20"},
           "report": {"latency_repeats": 20}, "cache_dir": str(cache_dir)}
    if objective is None:
        return {**raw, "steps": [{"train": opt}]}
    objective = dict(objective)
    terms = [next(iter(t)) for t in parse_loss(objective.get("loss", "kd"))]
    if args.kd and "kd" in terms:  # the kd rows' T and alpha, e.g. as a search chose them
        objective.update(parse_candidate(args.kd))
    return {**raw, "teacher": _teacher(args), "steps": [{"distill": {**opt, **objective}}]}


def run_recipes(args: argparse.Namespace, out_dir: Path) -> list[dict]:
    cache_dir = out_dir / "teacher_store"
    started = out_dir.is_dir() and any(p.name != cache_dir.name for p in out_dir.iterdir())
    if cache_dir.exists() and not started:  # the DKD row must meet an empty store (unless resuming)
        shutil.rmtree(cache_dir)
    rows = []
    done = reusable_rows(args)
    for seed, (label, (objective, teacher_mode)) in ((s, row) for s in range(args.seeds) for row in ROWS.items()):
        if args.rows and label not in args.rows:
            continue
        if (label, seed) in done:
            rows.append(done[label, seed])
            print(f"{label}, seed {seed}: taken from --reuse {args.reuse} (top-1 {rows[-1]['top1']:.2f})")
            continue
        if args.train_teacher and objective is not None and not args.teacher_file:
            trained = train_teacher(args, out_dir)
            print(f"teacher {args.train_teacher}, {args.teacher_epochs} epochs: top-1 {trained['top1']:.2f} "
                  f"(fresh process {trained['top1_fresh']:.2f}), {trained['model_file']}")
            args.teacher_file = trained["model_file"]  # the rows distil from it as from --teacher-file
        raw = _recipe(args, label, objective, cache_dir, seed)
        run_dir = out_dir / raw["name"]  # an interrupted benchmark resumes each run where it stopped
        result = Pipeline(validate_raw(raw), make_progress(quiet=False), out=run_dir,
                          resume=(run_dir / "checkpoints").is_dir()).run()
        step, base = result.record.steps[-1], result.record.baseline
        epoch_s = [r.seconds for r in step.curve]
        rows.append({"run": label, "seed": seed, "epochs": args.epochs, "teacher": teacher_mode,
                     "loss": step.options.get("loss"), "top1": step.measures.top1,
                     "images_per_s": statistics.median(r.images_per_s for r in step.curve),
                     "minutes_per_epoch": statistics.median(epoch_s) / 60,
                     "epoch_seconds": epoch_s,
                     "teacher_share": teacher_share(step.curve), "precision": step.curve[-1].precision,
                     "store": step.teacher_cache.model_dump() if step.teacher_cache else None,
                     "teacher_top1": base.measures.top1 if base is not None and base.source == "teacher" else None,
                     "seconds": step.seconds, "model_file": str(out_dir / raw["name"] / (step.model_file or "")),
                     "train_subset": args.train_subset, "setting": setting(args),
                     "teacher_file": args.teacher_file if objective is not None else None})
        rows[-1]["top1_fresh"] = fresh_top1(args, rows[-1]["model_file"])
        Path(args.out).with_suffix(".partial.json").write_text(json.dumps(rows, indent=2) + "\n")
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
    teacher = published_model("resnet56", args.teacher).module
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


def kd_epoch(teacher, student, bundle: DataBundle, lr: float) -> float:
    """Images/s of one epoch of the pipeline's Trainer + KD objective over ``bundle.train``
    (its validation set is emptied: no eval is counted)."""
    bundle.val = _Replay([])
    trainer = Trainer(student, make_objective("kd", teacher, KDOptions(temperature=4.0, alpha=0.9)), bundle,
                      OptimConfig(epochs=1, lr=lr, schedule="constant"))
    return trainer.fit()[0].images_per_s


def pipeline_loop(teacher, student, batches, bundle: DataBundle, lr: float) -> float:
    """The pipeline's loop on the same pre-made batches as the hand-written one."""
    replay = copy.copy(bundle)
    replay.train = _Replay(batches)
    return kd_epoch(teacher, student, replay, lr)


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


def pipeline_epoch(args: argparse.Namespace, device: torch.device, batches: int) -> float:
    """The pipeline's KD loop over the first ``batches`` augmented training batches, data
    loading included (the same job torchdistill_kd.py runs)."""
    cfg = DataConfig(name="cifar10", root=args.data_root, batch_size=128, train_subset=128 * batches)
    bundle = load_data(cfg, device=device, seed=0, channels_last=True)
    return kd_epoch(*_models(args, device), bundle, 0.1)


def versus_torchdistill(args: argparse.Namespace) -> dict:
    """The same KD job, distillcli's loop against torchdistill's (in its own environment, a fresh
    process per measure), alternated; torchdistill with 0 and 2 data-loader workers."""
    device = torch.device("cpu")
    script = Path(__file__).with_name("torchdistill_kd.py")
    pipeline_epoch(args, device, 3)  # warm-up
    ours: list[float] = []
    theirs: dict[int, list[float]] = {0: [], 2: []}
    for _ in range(args.repeats):
        ours.append(pipeline_epoch(args, device, args.batches))
        for workers, runs in theirs.items():
            out = subprocess.run([args.torchdistill_python, str(script), "--data-root", args.data_root,
                                  "--batches", str(args.batches), "--workers", str(workers)],
                                 check=True, capture_output=True, text=True).stdout
            runs.append(json.loads(out.strip().splitlines()[-1])["images_per_s"])
    best = max(theirs, key=lambda w: statistics.median(theirs[w]))
    return {"batches": args.batches, "repeats": args.repeats, "distillcli_images_per_s": statistics.median(ours),
            "distillcli_runs": ours, "torchdistill_images_per_s": {str(w): statistics.median(r) for w, r in theirs.items()},
            "torchdistill_runs": {str(w): r for w, r in theirs.items()}, "torchdistill_best_workers": best,
            "ratio": statistics.median(ours) / statistics.median(theirs[best])}


def setting(args: argparse.Namespace) -> dict:
    """What a row's result depends on besides its label and seed: rows reused from an earlier result
    must match it."""
    teacher = (f"{args.train_teacher}, {args.teacher_epochs} epochs, trained by distill" if args.train_teacher
               else Path(args.teacher_file or args.teacher).name)
    return {"teacher": teacher, "epochs": args.epochs, "kd": args.kd,
            "train_subset": args.train_subset, "val_subset": args.val_subset, "precision": args.precision}


def reusable_rows(args: argparse.Namespace) -> dict[tuple[str, int], dict]:
    """The finished rows of an earlier run of this script with the same setting (its result or its
    .partial.json), by (label, seed): a benchmark spread over several sessions, or machines, goes on
    where it stopped even when the run folders are gone."""
    if not args.reuse:
        return {}
    return {(r["run"], r["seed"]): r for r in result_rows(args.reuse) if r.get("setting") == setting(args)}


def result_rows(path: str) -> list[dict]:
    """The rows of a result of this script, or of its .partial.json."""
    data = json.loads(Path(path).read_text())
    return data["runs"] if isinstance(data, dict) else data


def fresh_top1(args: argparse.Namespace, model_file: str) -> float:
    """The row's saved model re-measured as a user would: ``distill eval`` in its own process."""
    subset = ["--subset", str(args.val_subset)] if args.val_subset else []
    return distill_eval(model_file, "--data-root", args.data_root, "--no-latency", *subset)["top1"]


def alone_rows(path: str, runs: list[dict]) -> list[dict]:
    """The student-alone rows of another result of this script (the same student, data and schedule:
    only the teacher differs), to measure this result's gains against."""
    alone = [r for r in result_rows(path) if r["run"] == "alone"]
    for r in runs:
        same = [a for a in alone if a["seed"] == r["seed"]]
        if same and (same[0]["epochs"], same[0].get("train_subset")) != (r["epochs"], r.get("train_subset")):
            raise SystemExit(f"--alone-from {path}: its alone rows trained {same[0]['epochs']} epochs on "
                             f"{same[0].get('train_subset') or 'all'} images, this run {r['epochs']} on "
                             f"{r.get('train_subset') or 'all'}; use a result with the same schedule")
    return alone


def seed_table(runs: list[dict]) -> str:
    """Per row: the final top-1's mean and sample std over seeds, and the gain over the student alone
    trained with the same seed (mean, and each seed's)."""
    alone = {r["seed"]: r["top1"] for r in runs if r["run"] == "alone"}
    lines = ["| run | seeds | top-1 % mean ± std | gain over alone (mean) | gain per seed |", "|---|---|---|---|---|"]
    for label in dict.fromkeys(r["run"] for r in runs):
        top = {r["seed"]: r["top1"] for r in runs if r["run"] == label}
        gains = [top[s] - alone[s] for s in sorted(top) if s in alone]
        std = statistics.stdev(top.values()) if len(top) > 1 else 0.0
        gain = f"{statistics.mean(gains):+.2f}" if gains and label != "alone" else "-"
        each = ", ".join(f"{g:+.2f}" for g in gains) if label != "alone" else "-"
        lines.append(f"| {label} | {len(top)} | {statistics.mean(top.values()):.2f} ± {std:.2f} | {gain} | {each} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", default="../shared/data/cifar10")
    p.add_argument("--teacher", default="../shared/weights/cifar10/akamaster_pytorch_resnet_cifar10/resnet56-4bfd9763.th")
    p.add_argument("--teacher-file", default=None, help="a distill model file as the teacher instead of --teacher")
    p.add_argument("--train-teacher", default=None, metavar="ARCH", help="train this teacher (e.g. vgg11_bn) with "
                   "distill first, on the same images, and distil from it")
    p.add_argument("--teacher-epochs", type=int, default=15, help="--train-teacher's epochs")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--seeds", type=int, default=1, help="run every row with seeds 0..N-1; report mean and spread")
    p.add_argument("--train-subset", type=int, default=None, help="use only the first N training images")
    p.add_argument("--val-subset", type=int, default=None, help="measure on the first N test images only")
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", default="auto", help="part 1's training loops: auto | fp32 | bf16 | fp16 "
                   "(part 2 compares fp32 loops)")
    p.add_argument("--batches", type=int, default=40, help="batches per throughput measurement")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--kd", default=None, help='the kd rows\' settings instead of the shipped ones, e.g. "T=2 alpha=0.5"')
    p.add_argument("--rows", nargs="*", choices=list(ROWS), help="only these rows of part 1 (default: all)")
    p.add_argument("--torchdistill-python", default=None, help="python of an environment with torchdistill 1.1.5: "
                   "also time the same KD job run by torchdistill (part 3)")
    p.add_argument("--skip-overhead", action="store_true", help="skip part 2 (the hand-written loop)")
    p.add_argument("--skip-accuracy", action="store_true", help="only measure the loop overhead")
    p.add_argument("--alone-from", default=None, help="a result of this script whose student-alone rows (same "
                   "epochs and data, another teacher) the gains are measured against")
    p.add_argument("--reuse", default=None, help="an earlier result (or its .partial.json) of the same setting: "
                   "its finished rows are taken, not run again")
    p.add_argument("--out", default="bench_results/kd.json")
    args = p.parse_args()
    if args.train_teacher and args.teacher_file:
        p.error("--train-teacher and --teacher-file both name the teacher: give one")
    keep_freed_memory()  # as the `distill` command does, for both loops alike
    out = Path(args.out)
    result = {} if args.skip_overhead else {"overhead": overhead(args)}
    if args.torchdistill_python:
        result["torchdistill"] = versus_torchdistill(args)
    if not args.skip_accuracy:
        result["runs"] = run_recipes(args, out.with_name(out.stem + "_runs"))
    if "overhead" in result:
        o = result["overhead"]
        print(f"\nKD loop throughput on {o['batches']} identical batches (median of {o['repeats']}):")
        print("| loop | images/s |\n|---|---|")
        print(f"| hand-written PyTorch | {o['hand_images_per_s']:.0f} |")
        print(f"| distillcli Trainer + KD objective | {o['pipeline_images_per_s']:.0f} |")
        print(f"overhead: {o['overhead_percent']:+.1f} % (target <= 5 %)")
    if "torchdistill" in result:
        t = result["torchdistill"]
        print(f"\nThe same KD job with data loading, {t['batches']} batches (median of {t['repeats']}):")
        print("| loop | images/s |\n|---|---|")
        print(f"| distillcli | {t['distillcli_images_per_s']:.0f} |")
        for w, v in t["torchdistill_images_per_s"].items():
            print(f"| torchdistill 1.1.5, {w} loader workers | {v:.0f} |")
        print(f"distillcli / best torchdistill: {t['ratio']:.2f}x (target >= 1.2x)")
    if "runs" in result:
        runs = result["runs"]
        if args.alone_from:
            result["alone_from"] = args.alone_from
            runs = [*alone_rows(args.alone_from, runs), *(r for r in runs if r["run"] != "alone")]
        kd = next((r for r in runs if r["run"] == "KD"), None)
        print("\n| run | epochs | teacher | top-1 % | images/s | min/epoch | teacher's share | teacher top-1 % |\n"
              "|---|---|---|---|---|---|---|---|")
        for r in runs:
            t = "-" if r["teacher_top1"] is None else f"{r['teacher_top1']:.2f}"
            share = "-" if r["teacher_share"] is None else f"{100 * r['teacher_share']:.0f} %"
            print(f"| {r['run']} | {r['epochs']} | {r['teacher']} | {r['top1']:.2f} | {r['images_per_s']:.0f} | "
                  f"{r['minutes_per_epoch']:.2f} | {share} | {t} |")
        alone = next((r for r in runs if r["run"] == "alone"), None)
        warm = next((r for r in runs if r["run"] == "KD, warm store"), None)
        differ = [f"{r['run']} seed {r['seed']}: {r['top1']:.2f} vs {r['top1_fresh']:.2f}"
                  for r in runs if r.get("top1_fresh") is not None and abs(r["top1"] - r["top1_fresh"]) > 0.005]
        print("each model file re-measured by `distill eval` in a fresh process: "
              + ("the same top-1" if not differ else "DIFFERS: " + "; ".join(differ)))
        if args.seeds > 1:
            print(seed_table(runs))
        elif kd and alone:
            print(f"KD - alone: {kd['top1'] - alone['top1']:+.2f} pt (target >= +0.5)")
        if kd and warm:
            print(f"KD epoch, warm store vs teacher every batch: {kd['minutes_per_epoch'] / warm['minutes_per_epoch']:.2f}x "
                  "faster (target >= 2x)")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
