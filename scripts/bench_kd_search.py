"""Choose a distillation loss's settings honestly: every candidate trains the same ResNet-20
student from the same teacher, seed, data order and schedule as scripts/bench_kd.py, with a share
of the training images held out (``data.val_split``), and is compared on that held-out share only.
The test set is never read, so the chosen setting can then be measured on it (bench_kd.py) without
having been picked on it.

    python scripts/bench_kd_search.py --epochs 15 --loss dist \
        --candidate "beta=2 gamma=2 T=4" "beta=1 gamma=1 T=1" "beta=1 gamma=1 T=4" \
        --out bench_results/dist_search.json

A candidate is ``key=value`` pairs for the loss's term (``T`` is its temperature); every run's
teacher outputs come from one store, filled by each seed's first candidate, so the others cost
what training the student alone costs. Seeds run one after another (every candidate on seed 0
first), and each run resumes where it stopped, so a search can span several sittings.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from bench_kd import IMAGENET, parse_candidate
from distillcli.engine.pipeline import Pipeline
from distillcli.progress import make_progress
from distillcli.recipe import validate_raw
from distillcli.record import RunRecord

def recipe(args: argparse.Namespace, label: str, term: dict, seed: int, store: Path) -> dict:
    data = {"name": "cifar10", "root": args.data_root, "batch_size": 128, "val_split": args.val_split}
    if args.train_subset:
        data["train_subset"] = args.train_subset
    loss = [{"ce": {}}, {args.loss: term}] if args.loss != "kd" else [{"kd": term}]
    step = {"epochs": args.epochs, "lr": 0.1, "weight_decay": 5e-4, "schedule": "cosine",
            "precision": args.precision, "teacher_cache": "auto", "loss": loss}
    name = "search-" + "".join(c if c.isalnum() else "-" for c in label).strip("-") + f"-s{seed}"
    teacher = {"arch": "resnet56", "checkpoint": args.teacher, "strip_prefix": "module.", **IMAGENET}
    return {"name": name, "seed": seed, "device": args.device, "data": data, "student": {"arch": "resnet20"},
            "teacher": teacher, "cache_dir": str(store), "steps": [{"distill": step}]}


def search_run(raw: dict, run_dir: Path) -> RunRecord:
    """The candidate's run, measured on the held-out share; a finished run is read back, an
    interrupted one resumes where it stopped."""
    metrics = run_dir / "metrics.json"
    if metrics.is_file() and json.loads(metrics.read_text())["run"]["status"] == "ok":
        return RunRecord.model_validate_json(metrics.read_text())
    return Pipeline(validate_raw(raw), make_progress(quiet=False), out=run_dir, resume=run_dir.exists(),
                    measure_on_val_split=True).run().record


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", default="../shared/data/cifar10")
    p.add_argument("--teacher", default="../shared/weights/cifar10/akamaster_pytorch_resnet_cifar10/resnet56-4bfd9763.th")
    p.add_argument("--loss", default="dist", help="the term searched (kd, dkd, dist); dkd and dist get a ce term")
    p.add_argument("--candidate", nargs="+", required=True, help='term settings, e.g. "beta=1 gamma=1 T=4"')
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--seeds", type=int, default=1)
    p.add_argument("--val-split", type=float, default=0.1, help="share of the training images held out to compare on")
    p.add_argument("--train-subset", type=int, default=None, help="use only the first N training images")
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", default="auto")
    p.add_argument("--out", default="bench_results/kd_search.json")
    args = p.parse_args()
    out = Path(args.out)
    runs_dir = out.with_name(out.stem + "_runs")
    rows = []
    for seed in range(args.seeds):  # seed by seed, so that a search cut short compares whole seeds
        for text in args.candidate:
            term = parse_candidate(text)
            raw = recipe(args, text, term, seed, runs_dir / "teacher_store")
            step = search_run(raw, runs_dir / raw["name"]).steps[-1]
            first = next(r for r in step.curve if r.val_top1 is not None)
            rows.append({"candidate": text, "term": term, "seed": seed, "val_top1": step.measures.top1,
                         "val_top1_epoch1": first.val_top1, "minutes": step.seconds / 60})
            out.with_suffix(".partial.json").write_text(json.dumps(rows, indent=2) + "\n")
            print(f"{text}, seed {seed}: val top-1 {step.measures.top1:.2f}")
    by = {c: [r["val_top1"] for r in rows if r["candidate"] == c] for c in args.candidate}
    best = max(by, key=lambda c: statistics.mean(by[c]))
    print(f"\n{args.loss}, {args.epochs} epochs, compared on {args.val_split:g} of the training images "
          "(the test set is not read):\n| candidate | val top-1 % (mean) | per seed | after epoch 1 |\n|---|---|---|---|")
    for c, v in by.items():
        e1 = [r["val_top1_epoch1"] for r in rows if r["candidate"] == c]
        print(f"| {c}{' (chosen)' if c == best else ''} | {statistics.mean(v):.2f} | "
              f"{', '.join(f'{x:.2f}' for x in v)} | {statistics.mean(e1):.2f} |")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"loss": args.loss, "epochs": args.epochs, "val_split": args.val_split,
                               "rows": rows, "chosen": best}, indent=2) + "\n")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
