"""Benchmark: `distill auto` on real CIFAR-10 from the pretrained ResNet-56 (93.39 %).

    python scripts/bench_auto.py --budget 90m --out bench_results/auto        # the real run (hours of CPU)
    python scripts/bench_auto.py --quick --out bench_results/auto-quick       # a smoke run: minutes

Runs the search (--max-drop 0.5, --objective latency at batch 64), then, each through the
engine as a plain recipe measured on the test split: the fp32 model, int8 alone, channel
pruning 2x + KD alone, and the chosen recipe re-run from best.yaml. Prints a table (speed-up
against fp32 at batch 64 timed in the same process, top-1 on the test set) and writes it to
OUT/bench.json and OUT/bench.md. --quick: 2,000 training images, 1,000 test images, a 4-minute
budget and 1-epoch fine-tunes, so the figures say only that everything runs.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
WEIGHTS = SHARED / "weights/cifar10/akamaster_pytorch_resnet_cifar10/resnet56-4bfd9763.th"
IMAGENET = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}


def base_recipe(args: argparse.Namespace) -> dict[str, Any]:
    data: dict[str, Any] = {"name": "cifar10", "root": str(args.data_root), "batch_size": 128, "val_split": 0.1}
    if args.quick:
        data.update(train_subset=2000, val_subset=1000)
    return {"name": "bench-auto", "seed": 0, "device": "cpu", "threads": args.threads, "data": data,
            "teacher": {"arch": "resnet56", "checkpoint": str(args.teacher), "strip_prefix": "module.", **IMAGENET}}


def run_plain(recipe: dict[str, Any], out: Path) -> dict[str, Any]:
    """A plain recipe through the engine; its final student measured on the test split."""
    from distillcli.pipeline import Pipeline
    from distillcli.progress import LineProgress
    from distillcli.recipe import validate_raw

    record = Pipeline(validate_raw(recipe), LineProgress(), out=out, force=True).run().record
    final = record.final_step()
    assert final is not None and record.baseline is not None
    return {"top1": final.measures.top1, "ms_b64": final.measures.latency_ms.get("64"),
            "base_top1": record.baseline.measures.top1, "base_ms_b64": record.baseline.measures.latency_ms.get("64")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", type=Path, default=SHARED / "data/cifar10")
    parser.add_argument("--teacher", type=Path, default=WEIGHTS)
    parser.add_argument("--budget", default="90m")
    parser.add_argument("--max-epochs", type=int, default=9)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--quick", action="store_true", help="a smoke run on a subset with a tiny budget")
    parser.add_argument("--out", type=Path, default=ROOT / "bench_results/auto")
    args = parser.parse_args()
    if not args.teacher.is_file() or not (args.data_root / "cifar-10-batches-py").is_dir():
        raise SystemExit(f"needs CIFAR-10 under {args.data_root} and the ResNet-56 weights at {args.teacher}")
    from distillcli.auto.config import split_auto_recipe
    from distillcli.auto.run import run_auto
    from distillcli.progress import LineProgress

    budget, epochs = ("4m", 1) if args.quick else (args.budget, args.max_epochs)
    base = base_recipe(args)
    report = {"latency_batches": [64], "latency_repeats": 10}
    raw = {**base, "auto": {"objective": "latency", "max_drop": 0.5, "batch_size": 64, "budget": budget,
                            "max_epochs": epochs, "round_to": 8}}
    t0 = time.perf_counter()
    result, test, summary = run_auto(*split_auto_recipe(raw, "bench"), args.out / "search", LineProgress(), force=True)
    search_s = time.perf_counter() - t0
    singles = {
        "int8 static alone": [{"quantize": {"method": "static"}}],
        "channel 2x + KD alone": [{"prune": {"method": "channel", "target_mac_reduction": 2.0, "round_to": 8}},
                                  {"distill": {"epochs": epochs, "lr": 0.01}}],
    }
    rows = []
    for label, steps in singles.items():
        recipe = {**base, "student": {"from": "teacher"}, "steps": steps, "report": report}
        rows.append((label, run_plain(recipe, args.out / label.split()[0])))
    if result.chosen is not None:
        best = yaml.safe_load((args.out / "search" / "best.yaml").read_text())
        best["report"] = {**best["report"], **report}
        rows.append(("chosen, re-run from best.yaml", run_plain(best, args.out / "rerun")))
    table = ["| model | top-1 % (test) | Δ pt | ms b64 | speed-up b64 |", "|---|---|---|---|---|"]
    out_rows = []
    for label, m in rows:
        speedup = m["base_ms_b64"] / m["ms_b64"] if m["ms_b64"] and m["base_ms_b64"] else None
        drop = m["top1"] - m["base_top1"]
        out_rows.append({"model": label, **m, "speedup_b64": speedup, "delta": drop})
        table.append(f"| {label} | {m['top1']:.2f} | {drop:+.2f} | {m['ms_b64']:.1f} | "
                     + (f"{speedup:.2f}x |" if speedup else "- |"))
    if test is not None:
        table.insert(2, f"| chosen by the search (trial {result.chosen.number}) | {test['chosen']['top1']:.2f} | "
                        f"{-test['drop']:+.2f} | {test['chosen']['cost']:.1f} | {1 / test['cost_ratio']:.2f}x |")
    text = "\n".join(table)
    print(text)
    print(f"search: {summary['trials']} in {search_s / 60:.1f} min; fp32 ResNet-56 top-1 "
          f"{rows[0][1]['base_top1']:.2f} %")
    (args.out / "bench.md").write_text(text + "\n")
    (args.out / "bench.json").write_text(json.dumps({"quick": args.quick, "budget": budget, "search": summary,
                                                     "search_seconds": search_s, "rows": out_rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
