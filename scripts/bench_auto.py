"""Benchmark: `distill auto` on real CIFAR-10 from the pretrained ResNet-56 (93.39 %).

    python scripts/bench_auto.py --budget 90m --out bench_results/auto        # the real run (hours of CPU)
    python scripts/bench_auto.py --quick --out bench_results/auto-quick       # a smoke run: minutes

Runs the search (--max-drop 0.5, --objective latency at batch 64; candidates compared on a fixed
half of the test split, the published model having trained on all the training images), then,
each through the engine as a plain recipe measured on the other half of the test split: the
fp32 model, int8 alone, channel pruning 2x + KD alone, that model quantized to int8 (`combo`: a
reference point that nothing selected), and the chosen recipe re-run from best.yaml. Prints a
table (speed-up against fp32 at batch 64 timed in the same process, top-1 on the reporting half)
and writes it to
OUT/bench.json and OUT/bench.md. Then (part `files`) the files a user ships, each loaded in its
own fresh process and timed in turn against the starting model's file, with their test top-1
there: the figures to quote. `--parts` runs some parts now and keeps the others' rows from
OUT/bench.json; a rerun continues the search (`--force` restarts it). --quick: 2,000 training images, 1,000 test images, a 4-minute
budget and 1-epoch fine-tunes, so the figures say only that everything runs.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import yaml

from distillcli.atomic_write import write_text

from published import IMAGENET, published_model

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
WEIGHTS = SHARED / "weights/cifar10/akamaster_pytorch_resnet_cifar10/resnet56-4bfd9763.th"
CHOSEN, RERUN = "chosen by the search", "chosen, re-run from best.yaml"
COMBO = "channel 2x + KD alone, then int8 static (a reference point, chosen by nothing)"
ORDER = [CHOSEN, "int8 static alone", "channel 2x + KD alone", COMBO, RERUN]
PARTS = ("search", "int8", "channel", "combo", "rerun", "files")
# The published ResNet-56 trained on all 50,000 training images: half the test set (fixed) chooses,
# every row is measured on the other half
SPLIT = {"val_split": 0.5, "val_from": "test"}


def base_recipe(args: argparse.Namespace) -> dict[str, Any]:
    data: dict[str, Any] = {"name": "cifar10", "root": str(args.data_root), "batch_size": 128, **SPLIT}
    if args.quick:
        data.update(train_subset=2000, val_subset=1000)
    return {"name": "bench-auto", "seed": 0, "device": "cpu", "threads": args.threads, "data": data,
            "teacher": {"arch": "resnet56", "checkpoint": str(args.teacher), "strip_prefix": "module.", **IMAGENET}}


def run_plain(recipe: dict[str, Any], out: Path) -> dict[str, Any]:
    """A plain recipe through the engine; its final student measured on the reporting half of the test split."""
    from distillcli.engine.pipeline import Pipeline
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
    parser.add_argument("--parts", default=",".join(PARTS),
                        help="what to run now (the others' rows are kept from OUT/bench.json): " + ",".join(PARTS))
    parser.add_argument("--force", action="store_true", help="start the search anew (else a rerun continues it)")
    args = parser.parse_args()
    args.parts = set(args.parts.split(","))
    if args.parts - set(PARTS):
        raise SystemExit(f"--parts takes {','.join(PARTS)}")
    if not args.teacher.is_file() or not (args.data_root / "cifar-10-batches-py").is_dir():
        raise SystemExit(f"needs CIFAR-10 under {args.data_root} and the ResNet-56 weights at {args.teacher}")
    from distillcli.auto.config import split_auto_recipe
    from distillcli.auto.run import run_auto
    from distillcli.progress import LineProgress

    budget, epochs = ("4m", 1) if args.quick else (args.budget, args.max_epochs)
    base = base_recipe(args)
    report = {"latency_batches": [64], "latency_repeats": 10}
    saved = json.loads((args.out / "bench.json").read_text()) if (args.out / "bench.json").is_file() else {}
    rows: dict[str, dict[str, Any]] = {r["model"]: r for r in saved.get("rows", [])}
    summary, search_s = saved.get("search"), saved.get("search_seconds")
    if "search" in args.parts:
        raw = {**base, "auto": {"objective": "latency", "max_drop": 0.5, "batch_size": 64, "budget": budget,
                                "max_epochs": epochs}}
        t0 = time.perf_counter()
        result, test, summary = run_auto(*split_auto_recipe(raw, "bench"), args.out / "search", LineProgress(),
                                         force=args.force)
        search_s = time.perf_counter() - t0
        if test is not None and result.chosen is not None:
            rows[CHOSEN] = {"model": CHOSEN, "trial": result.chosen.number, "top1": test["chosen"]["top1"],
                            "base_top1": test["start"]["top1"], "ms_b64": test["chosen"]["cost"],
                            "base_ms_b64": test["start"]["cost"]}
    singles = {
        "int8": ("int8 static alone", [{"quantize": {"method": "static"}}]),
        "channel": ("channel 2x + KD alone", [{"prune": {"method": "channel", "target_mac_reduction": 2.0}},
                                              {"distill": {"epochs": epochs, "lr": 0.01}}]),
    }
    for part, (label, steps) in singles.items():
        if part in args.parts:
            recipe = {**base, "student": {"from": "teacher"}, "steps": steps, "report": report}
            rows[label] = {"model": label, **run_plain(recipe, args.out / part)}
    if "combo" in args.parts and (args.out / "channel" / "models" / "student.pt").is_file():
        recipe = {**base, "student": {"checkpoint": str(args.out / "channel" / "models" / "student.pt")},
                  "steps": [{"quantize": {"method": "static"}}], "report": report}
        rows[COMBO] = {"model": COMBO, **run_plain(recipe, args.out / "combo")}
    if "rerun" in args.parts and (args.out / "search" / "best.yaml").is_file():
        best = yaml.safe_load((args.out / "search" / "best.yaml").read_text())
        best["report"] = {**best["report"], **report}
        rows[RERUN] = {"model": RERUN, **run_plain(best, args.out / "rerun")}
    files = saved.get("files")
    if "files" in args.parts:
        files = fresh_processes(args)
    table = ["| model | top-1 % (test half) | Δ pt | ms b64 | speed-up b64 |", "|---|---|---|---|---|"]
    for label in ORDER:
        if (m := rows.get(label)) is None:
            continue
        m["speedup_b64"] = m["base_ms_b64"] / m["ms_b64"] if m["ms_b64"] and m["base_ms_b64"] else None
        m["delta"] = m["top1"] - m["base_top1"]
        name = f"{label} (trial {m['trial']})" if "trial" in m else label
        table.append(f"| {name} | {m['top1']:.2f} | {m['delta']:+.2f} | {m['ms_b64']:.1f} | "
                     + (f"{m['speedup_b64']:.2f}x |" if m["speedup_b64"] else "- |"))
    if files:
        table += ["", "Each file loaded in its own fresh process (distillcli.file_timing), timed in turn:", "",
                  "| file | top-1 % (test half) | ms b64 | speed-up b64 (range over rounds) | first load s |",
                  "|---|---|---|---|---|"]
        table += [f"| {f['label']} | {f['top1']:.2f} | {f['ms']:.1f} | {f['speedup']:.2f}x "
                  f"({f['speedup_range'][0]:.2f}-{f['speedup_range'][1]:.2f}) | {f['first_load_s']:.1f} |" for f in files]
    text = "\n".join(table)
    print(text)
    if summary:
        print(f"search: {summary['trials']} in {(search_s or 0) / 60:.1f} min")
    args.out.mkdir(parents=True, exist_ok=True)
    write_text(args.out / "bench.md", text + "\n")
    write_text(args.out / "bench.json", json.dumps({"quick": args.quick, "budget": budget, "search": summary,
                                                   "search_seconds": search_s, "files": files,
                                                   "rows": [rows[k] for k in ORDER if k in rows]}, indent=2) + "\n")


def start_file(args: argparse.Namespace) -> Path:
    """The published checkpoint as the model file a user would get from distill (fp32, eager)."""
    from distillcli.data import load_data
    from distillcli.data.config import DataConfig
    from distillcli.modelfile import file_header, save_model

    path = args.out / "fp32-resnet56.pt"
    if not path.is_file():
        data = load_data(DataConfig(name="cifar10", root=str(args.data_root), **SPLIT), seed=0)
        handle = published_model("resnet56", args.teacher)
        save_model(path, handle, file_header(handle, class_names=data.class_names, input_shape=data.input_shape,
                                             data=data.spec))
    return path


def fresh_processes(args: argparse.Namespace) -> list[dict[str, Any]]:
    """The files a user ships, each loaded in its own fresh process and timed in turn against the
    starting model's file (written here by an evaluate-only run): top-1 on the reporting half there too."""
    from file_timing import time_files, timing_row

    candidates = [("fp32 ResNet-56 (start)", start_file(args)),
                  ("int8 static alone", args.out / "int8" / "models" / "student.pt2"),
                  ("channel 2x + KD alone", args.out / "channel" / "models" / "student.pt"),
                  ("channel 2x + KD, then int8 static", args.out / "combo" / "models" / "student.pt2"),
                  ("chosen by the search (best.pt2)", args.out / "search" / "best.pt2"),
                  ("chosen, re-run from best.yaml", args.out / "rerun" / "models" / "student.pt2")]
    present = [(label, path, {}) for label, path in candidates if path.is_file()]
    timings = time_files(present, 64, 9, 5, args.threads or 2, args.out / "inductor-cache",
                         ["--data-root", str(args.data_root)], log=lambda text: print(f"  {text}", flush=True))
    return [timing_row(timings[0], t) for t in timings]


if __name__ == "__main__":
    main()
